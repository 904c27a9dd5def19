/**
 * Fleet-wide dedupe without a sink (issue 8 acceptance): the same text
 * submitted under different ids is computed once -- in one read, across
 * reads, and across workers -- and answered `deduped`; the cache is bounded
 * and expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { contentHash } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { modelRef, parseModelTable } from '../src/models/table.js';
import type { EmbedResult } from '../src/types.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { readResults } from './helpers/results.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('dedupe');
const k = keys(prefix);
const reply = `${prefix}:reply:d`;
let client: StreambedClient;
let one: WorkerHandle;
let computed = 0;
const MAX_ENTRIES = 40;

beforeAll(async () => {
  client = new StreambedClient({ redis, prefix });
  const env = {
    MODELS: 'fx=fixture:8',
    DEDUPE_TTL_S: 60,
    DEDUPE_MAX_ENTRIES: MAX_ENTRIES,
    // Several sources answered on one stream: the earlier, open reply pattern.
    REPLY_TO_PATTERN: `${prefix}:reply:*`,
  };
  one = await startTestWorker(prefix, env);
  one.events.on('batch', (b) => (computed += b.texts));
});

afterAll(async () => {
  await stopAllWorkers();
  await client.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function answers(ids: string[]): Promise<Map<string, EmbedResult>> {
  return until(`answers for ${ids.join(',')}`, async () => {
    const byId = new Map((await readResults(redis, reply)).map((r) => [r.id, r]));
    return ids.every((id) => byId.has(id)) ? byId : undefined;
  });
}

async function cacheKeys(): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:cache:fx:*`, 'COUNT', 1000);
    cursor = next;
    out.push(...found);
  } while (cursor !== '0');
  return out;
}

const vector = (r: EmbedResult | undefined) =>
  r?.status === 'ok' ? Array.from(r.res.vectors[0] ?? []) : undefined;

describe('dedupe cache', () => {
  it('computes the same text once when it comes twice in one submit, and once more later', async () => {
    const before = computed;
    await client.submit(
      [
        { id: 'd1', source: 'dd', text: 'the very same text' },
        { id: 'd2', source: 'dd', text: 'the very same text' },
        { id: 'u1', source: 'dd', text: 'another text' },
      ],
      { model: 'fx', replyTo: reply },
    );
    const first = await answers(['d1', 'd2', 'u1']);
    expect(computed - before).toBe(2); // 'the very same text' once, 'another text' once

    await client.submit([{ id: 'd3', source: 'dd', text: 'the very same text' }], {
      model: 'fx',
      replyTo: reply,
    });
    const later = await answers(['d3']);
    await until(
      'fills counted',
      async () => (await redis.hget(k.progress('dd'), 'deduped')) === '2',
    );
    console.log(
      `dedupe: 4 entries (3 with the same text) -> ${computed - before} texts computed; progress ${JSON.stringify(await redis.hgetall(k.progress('dd')))}`,
    );
    expect(computed - before).toBe(2);
    expect(vector(first.get('d2'))).toEqual(vector(first.get('d1')));
    expect(vector(later.get('d3'))).toEqual(vector(first.get('d1')));
    // Answers from the cache carry the tokens the model read, as the computed one does.
    const tokens = (r: EmbedResult | undefined) => (r?.status === 'ok' ? r.res.tokens : undefined);
    expect(tokens(first.get('d1'))?.[0]).toBeGreaterThan(0);
    expect(tokens(later.get('d3'))).toEqual(tokens(first.get('d1')));
    expect(tokens(first.get('d2'))).toEqual(tokens(first.get('d1')));
    expect(later.get('d3')?.status).toBe('ok');
    const progress = await redis.hgetall(k.progress('dd'));
    expect(progress).toMatchObject({ submitted: '4', done: '2', deduped: '2' });
  });

  it('is fleet-wide: another worker answers a text the first one computed from the cache', async () => {
    await client.submit([{ id: 'x1', source: 'fw', text: 'shared across the fleet' }], {
      model: 'fx',
      replyTo: reply,
    });
    await answers(['x1']);
    await stopAllWorkers(); // only the second worker is left to answer
    const two = await startTestWorker(prefix, {
      MODELS: 'fx=fixture:8',
      DEDUPE_TTL_S: 60,
      DEDUPE_MAX_ENTRIES: MAX_ENTRIES,
      REPLY_TO_PATTERN: `${prefix}:reply:*`,
    });
    let computedTwo = 0;
    two.events.on('batch', (b) => (computedTwo += b.texts));
    await client.submit([{ id: 'x2', source: 'fw', text: 'shared across the fleet' }], {
      model: 'fx',
      replyTo: reply,
    });
    const got = await answers(['x1', 'x2']);
    expect(computedTwo).toBe(0);
    expect(vector(got.get('x2'))).toEqual(vector(got.get('x1')));
    expect(await redis.hget(k.progress('fw'), 'deduped')).toBe('1');
  });

  it('reads a vector an older worker cached without a token count, and answers it without one', async () => {
    // The format before counts were kept: a flag byte (not truncated), then the floats.
    const old = Float32Array.from({ length: 8 }, (_, i) => (i + 1) / 10);
    const value = Buffer.concat([Buffer.from([0]), Buffer.from(old.buffer)]);
    // The cache key: the model's reference (what changes its vectors) and the text.
    const ref = modelRef(parseModelTable('fx=fixture:8')[0]!);
    const hash = contentHash([ref, 'cached by an older worker']);
    await redis.set(k.dedupe('fx', hash), value, 'EX', 60);
    await client.submit([{ id: 'o1', source: 'od', text: 'cached by an older worker' }], {
      model: 'fx',
      replyTo: reply,
    });
    const got = (await answers(['o1'])).get('o1');
    expect(vector(got)).toEqual(Array.from(old));
    expect(got?.status === 'ok' && got.res.tokens).toBeUndefined();
  });

  it('is bounded (fills per TTL window) and expiring', async () => {
    const pages = Array.from({ length: 100 }, (_, i) => ({
      id: `b${i}`,
      source: 'bd',
      text: `distinct ${i}`,
    }));
    // Budgets are per window of DEDUPE_TTL_S (60 s): a run that crosses into the next
    // window may fill both budgets, which the bound (MAX_ENTRIES alive) allows.
    const windowNow = () => Math.floor(Date.now() / 1000 / 60);
    const firstWindow = windowNow();
    await client.submit(pages, { model: 'fx', replyTo: reply });
    await answers(pages.map((p) => p.id));
    // Fills past the window's budget (half the bound) are deleted right after: wait until settled.
    let last = -1;
    const cached = await until(
      'cache settled',
      async () => {
        const found = await cacheKeys();
        const settled = found.length === last;
        last = found.length;
        return settled ? found : undefined;
      },
      10_000,
      300,
    );
    console.log(
      `dedupe: 100 distinct texts with DEDUPE_MAX_ENTRIES=${MAX_ENTRIES} -> ${cached.length} cached`,
    );
    expect(cached.length).toBeGreaterThan(0);
    const windows = windowNow() - firstWindow + 1;
    // One window's budget each (+1: a re-fill of the same text), never past the bound.
    expect(cached.length).toBeLessThanOrEqual(
      Math.min(MAX_ENTRIES, windows * (MAX_ENTRIES / 2 + 1)),
    );
    const ttl = await redis.ttl(cached[0] as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });
});
