/**
 * The core path end to end (issue 2 acceptance): envelopes in through real
 * Redis streams, vectors out, checked against the embedding core directly.
 */
import { execFileSync } from 'node:child_process';

import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import type { EmbedResult } from '../src/types.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { loadEmbedder } from '../workers/embed-core.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('fleet');
const k = keys(prefix);
let worker: WorkerHandle;
let client: StreambedClient;
let small: { dir: string; dim: number };
let wide: { dir: string; dim: number };

async function readAll(stream: string): Promise<EmbedResult[]> {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, fields]) => decodeResult(id.toString(), fields));
}

/** The embedding core run directly in this process on the `small` model (fp32). */
function smallCore() {
  return loadEmbedder({
    ref: small.dir,
    local: true,
    dtype: 'fp32',
    intraOpThreads: 1,
    allowRemote: false,
  });
}

function cosineClose(a: Float32Array, b: Float32Array, tol: number): boolean {
  return a.length === b.length && a.every((v, i) => Math.abs(v - (b[i] as number)) <= tol);
}

beforeAll(async () => {
  small = await tinyModel({ hidden: 64 });
  wide = await tinyModel({ hidden: 128 });
  worker = await startTestWorker(prefix, {
    MODELS: `small=${small.dir};dtype=fp32,wide=${wide.dir}`,
    THREADS: 2,
    CLAIM_IDLE_MS: 60_000,
  });
  client = new StreambedClient({ redis: redis, prefix });
});

afterAll(async () => {
  await client.close();
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('core fleet', () => {
  it('answers 1,000 envelopes from 3 sources on their own reply streams, vectors equal to the core', async () => {
    const sources = ['alpha', 'beta', 'gamma'];
    const pages = Array.from({ length: 1000 }, (_, i) => ({
      id: `p${i}`,
      source: sources[i % 3] as string,
      text: `page ${i} about ${['redis', 'vectors', 'streams', 'workers'][i % 4]} ${'word '.repeat(i % 40)}`,
      meta: { n: i },
    }));
    for (const source of sources) {
      const mine = pages.filter((p) => p.source === source);
      await client.submit(mine, { model: 'small', replyTo: `${prefix}:reply:${source}/f` });
    }
    const stream = k.request('small');
    await until(
      'all answered',
      async () =>
        ((await groupInfo(redis, stream, k.group))?.['entries-read'] === 1000 &&
          (await redis.xpending(stream, k.group))[0] === 0) ||
        undefined,
      60_000,
    );

    // fp32: q8's dynamic activation quantisation is per tensor, so a q8 vector shifts
    // (~1e-3) with its batch neighbours; fp32 vectors do not depend on the batch.
    const core = await smallCore();
    for (const source of sources) {
      const results = await readAll(`${prefix}:reply:${source}/f`);
      const expected = pages.filter((p) => p.source === source);
      expect(results).toHaveLength(expected.length);
      expect(new Set(results.map((r) => r.id))).toEqual(new Set(expected.map((p) => p.id)));
      expect(results.every((r) => r.source === source && r.status === 'ok')).toBe(true);
      // Check a spread of them against the core run directly, in a different batch.
      const sample = results.filter((_, i) => i % 25 === 0);
      const direct = await core.embed(sample.map((r) => pages[Number(r.id.slice(1))]!.text));
      sample.forEach((r, i) => {
        if (r.status !== 'ok') throw new Error('not ok');
        expect(r.res.dim).toBe(small.dim);
        expect(r.res.meta).toEqual({ n: Number(r.id.slice(1)) });
        expect(
          cosineClose(
            r.res.vectors[0]!,
            direct.data.subarray(i * direct.dim, (i + 1) * direct.dim),
            1e-5,
          ),
        ).toBe(true);
      });
    }
    const info = await groupInfo(redis, stream, k.group);
    expect(info?.pending).toBe(0);
    expect(info?.lag).toBe(0);
  });

  it('gives each text of a many-text envelope its own vector, a long text cut where the core cuts it', async () => {
    const long = Array.from({ length: 900 }, (_, i) => `word${i % 50} streams`).join(' ');
    const texts = ['short one', long, 'a medium text about vectors and workers '.repeat(8), 'x'];
    const reply = `${prefix}:reply:chunks/c`;
    await client.submit([{ id: 'many', source: 'chunks', texts }], {
      model: 'small',
      replyTo: reply,
    });
    const result = await until('many answered', async () => (await readAll(reply))[0]);
    if (result.status !== 'ok') throw new Error(`not ok: ${JSON.stringify(result)}`);
    expect(result.res.truncated).toEqual([false, true, false, false]);
    const core = await smallCore();
    // The core tokenises raw texts itself; the worker's main thread tokenised these.
    const direct = await core.embed(texts);
    expect(Array.from(direct.truncated)).toEqual([0, 1, 0, 0]);
    texts.forEach((_, i) => {
      const own = direct.data.subarray(i * direct.dim, (i + 1) * direct.dim);
      expect(cosineClose(result.res.vectors[i]!, own, 1e-5)).toBe(true);
    });
  });

  it('answers a flat-field entry added with plain redis-cli on the global results stream', async () => {
    execFileSync('redis-cli', [
      '-u',
      process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      'XADD',
      k.request('small'),
      '*',
      'id',
      'cli-1',
      'source',
      'docs',
      'text',
      'hello from redis-cli',
    ]);
    const result = await until('result on sb:results', async () =>
      (await readAll(k.results())).find((r) => r.id === 'cli-1'),
    );
    expect(result.status).toBe('ok');
    expect(result.status === 'ok' && result.res.vectors[0]?.length).toBe(small.dim);
  });

  it('serves two models of different dimensions from one process', async () => {
    const [a] = await client.embed(['same text'], { model: 'small', timeoutMs: 20_000 });
    const [b] = await client.embed(['same text'], { model: 'wide', timeoutMs: 20_000 });
    expect(a?.length).toBe(64);
    expect(b?.length).toBe(128);
    expect(worker.models.get('wide')?.dim).toBe(128);
  });

  it('answers bad input with the documented code, acks it, and keeps serving', async () => {
    const reply = `${prefix}:reply:s/bad`;
    const add = (...fields: (string | Buffer)[]) => redis.xadd(k.request('small'), '*', ...fields);
    const denied = await add(
      'id',
      'b1',
      'source',
      's',
      'text',
      'x',
      'reply_to',
      'elsewhere:stream',
    );
    const noId = await add('source', 's', 'text', 'x', 'reply_to', reply);
    const big = await add(
      'id',
      'b3',
      'source',
      's',
      'text',
      'x'.repeat(1_048_577),
      'reply_to',
      reply,
    );
    const garbage = await add('env', Buffer.from([0xc1, 0x00, 0xff]));
    const good = await add('env', pack({ id: 'ok1', source: 's', text: 'fine', reply_to: reply }));

    const byRid = async () =>
      new Map([...(await readAll(k.results())), ...(await readAll(reply))].map((r) => [r.rid, r]));
    const results = await until('all five answered', async () => {
      const m = await byRid();
      return [denied, noId, big, garbage, good].every((id) => m.has(id as string)) ? m : undefined;
    });
    const code = (rid: unknown) => {
      const r = results.get(rid as string);
      return r?.status === 'error' ? r.res.code : r?.status;
    };
    expect(code(denied)).toBe('reply_to_denied');
    expect(code(noId)).toBe('invalid');
    expect(code(big)).toBe('too_large');
    expect(code(garbage)).toBe('invalid');
    expect(code(good)).toBe('ok');
    // The salvaged reply stream gets the error; the denied one goes to the global stream.
    expect((await readAll(reply)).map((r) => r.rid)).toEqual(
      expect.arrayContaining([noId, big, good]),
    );
    const dlq = await redis.xrange(k.dlq('small'), '-', '+');
    const reasons = dlq.map(([, f]) => f[f.indexOf('reason') + 1]);
    expect(reasons).toEqual(
      expect.arrayContaining(['reply_to_denied', 'invalid', 'too_large', 'invalid']),
    );
    expect((await redis.xpending(k.request('small'), k.group))[0]).toBe(0);
  });
});
