/**
 * Backfills at scale (issue 19): a job's record is a checkpoint over its
 * ordered input, so a job far larger than the fleet's RESULTS_MAXLEN resumes
 * exactly after a SIGKILL of the CLI; `reply: status` results carry no
 * vectors, and a status-only job keeps nothing of its answers in Redis but
 * its bitmap, yet still lists its dead-lettered pages.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { cliSpawner, runCli } from './helpers/cli.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('bfrec');
const k = keys(prefix);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bfrec-'));
const cli = cliSpawner(prefix);
let worker: ChildWorker;

beforeAll(async () => {
  // RESULTS_MAXLEN 100: every job below is many times larger. TRIM off: the
  // request streams keep every entry, so a page sent twice would show.
  worker = spawnWorker(prefix, {
    MODELS: 'fx=fixture:8',
    RESULTS_MAXLEN: 100,
    TRIM_INTERVAL_MS: 0,
  });
  await until('worker group', async () => {
    const groups = (await redis.xinfo('GROUPS', k.request('fx')).catch(() => [])) as unknown[];
    return groups.length > 0;
  });
});

afterAll(async () => {
  cli.killAll();
  worker.proc.kill('SIGTERM');
  await worker.exited;
  await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
});

const backfill = (args: string[], env: Record<string, string> = {}) =>
  cli.run(['backfill', ...args], env);

function writeJsonl(name: string, n: number, text: (i: number) => string): string {
  const file = path.join(dir, name);
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ id: `p${i}`, text: text(i) }));
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** XINFO STREAM's entries-added: every XADD ever, trimmed ones included. */
async function entriesAdded(stream: string): Promise<number> {
  const info = (await redis.xinfo('STREAM', stream)) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

/** Page ids in a request stream, from the SDK's msgpack envelopes. */
async function requestIds(stream: string): Promise<string[]> {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([, f]) => (unpack(f[f.length - 1] as Buffer) as { id: string }).id);
}

const bitsSet = (job: string) => redis.bitcount(k.backfillAnswered(job));
const submittedOf = async (job: string) =>
  Number(await redis.hget(k.backfillJob(job), 'submitted'));

describe('backfill record', () => {
  it('resumes a SIGKILLed job 30x larger than RESULTS_MAXLEN: one answer per page, none sent twice', async () => {
    const N = 3000;
    const file = writeJsonl('big.jsonl', N, (i) => `page ${i} @@slow:1`);
    // In flight stays under RESULTS_MAXLEN: answers not yet recorded are never trimmed away.
    const env = { BACKFILL_MAX_IN_FLIGHT: '60' };
    const args = [file, '-m', 'fx', '--job', 'big', '--source', 'big'];
    const first = backfill(args, env);
    await until('half answered', async () => (await bitsSet('big')) >= N / 2, 60_000, 20);
    first.proc.kill('SIGKILL');
    await first.exited;
    const submittedAtKill = await submittedOf('big');
    expect(submittedAtKill).toBeLessThan(N);

    const second = backfill([...args, '--wait'], env);
    const code = await second.exited;
    const out = second.output();
    expect(code, out).toBe(0);
    const plan =
      /(\d+) already answered, (\d+) submitted earlier \(waiting\), (\d+) to submit/.exec(out);
    expect(plan, out).not.toBeNull();
    const [before, waiting, toSubmit] = (plan as RegExpExecArray).slice(1).map(Number);
    expect((before as number) + (waiting as number)).toBe(submittedAtKill);
    expect(toSubmit).toBe(N - submittedAtKill);

    // The record: every page answered exactly once, the bitmap exactly N bits long.
    expect(await bitsSet('big')).toBe(N);
    expect(await redis.strlen(k.backfillAnswered('big'))).toBe(Math.ceil(N / 8));
    expect(await submittedOf('big')).toBe(N);
    expect(await redis.hlen(k.backfillFailed('big'))).toBe(0);
    // The fleet answered each page once; the stream kept only ~RESULTS_MAXLEN of them.
    expect(await entriesAdded(k.backfillReply('big', 'big'))).toBe(N);
    expect(await redis.xlen(k.backfillReply('big', 'big'))).toBeLessThan(N / 5);
    // Nothing submitted twice.
    const sent = await requestIds(k.bulkSource('fx', 'big'));
    expect(sent).toHaveLength(N);
    expect(new Set(sent).size).toBe(N);
    expect(await redis.ttl(k.backfillReply('big', 'big'))).toBeGreaterThan(600_000);

    const again = backfill([...args, '--wait'], env);
    expect(await again.exited).toBe(0);
    expect(again.output()).toContain(
      `${N} already answered, 0 submitted earlier (waiting), 0 to submit`,
    );
    expect(await entriesAdded(k.bulkSource('fx', 'big'))).toBe(N);
  });

  it('a status-only job keeps no answers in Redis and still lists its dead-lettered pages', async () => {
    const N = 400;
    const poisoned = new Set([3, 150, 399]);
    const file = writeJsonl('status.jsonl', N, (i) =>
      poisoned.has(i) ? `bad ${i} @@throw` : `page ${i}`,
    );
    const args = [file, '-m', 'fx', '--job', 'st', '--source', 'st', '--reply', 'status', '--wait'];
    // In flight below the worker's RESULTS_MAXLEN (100), as documented: answers not yet
    // recorded must not be trimmed away by the fleet's MAXLEN before the job reads them.
    const run = backfill(args, { BACKFILL_REPLY_TTL_S: '120', BACKFILL_MAX_IN_FLIGHT: '50' });
    expect(await run.exited, run.output()).toBe(1);
    const out = run.output();
    expect(out).toContain('answers keep status only');
    expect(out).toContain('3 page(s) dead-lettered');
    for (const i of poisoned) expect(out).toMatch(new RegExp(`st/p${i}: model_error`));
    expect(await bitsSet('st')).toBe(N);
    // Recorded answers are trimmed from the reply stream: one entry stays (XTRIM MINID keeps it).
    expect(await entriesAdded(k.backfillReply('st', 'st'))).toBe(N);
    expect(await redis.xlen(k.backfillReply('st', 'st'))).toBeLessThanOrEqual(1);
    const ttl = await redis.ttl(k.backfillReply('st', 'st'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120);
    // Status reads the job from its record, not from the (trimmed) stream.
    const status = await runCli(['status', '--json', '--models', 'fx'], { KEY_PREFIX: prefix });
    const jobs = (JSON.parse(status.stdout) as { jobs: Array<Record<string, unknown>> }).jobs;
    const st = jobs.find((j) => j.job === 'st') as Record<string, number>;
    expect(st).toMatchObject({ submitted: N, answered: N, failed: poisoned.size });
    // Started when the run began (the record), not at the one answer its trimmed stream holds.
    expect(st.startedMs).toBe(Number(await redis.hget(k.backfillJob('st'), 'started_ms')));
    expect(st.finishedMs).toBeGreaterThan(st.startedMs as number);

    // A re-run lists them again from the record, and sends nothing.
    const again = backfill(args);
    expect(await again.exited).toBe(1);
    expect(again.output()).toContain(
      `${N} already answered, 0 submitted earlier (waiting), 0 to submit`,
    );
    expect(again.output()).toContain('3 page(s) dead-lettered');
    expect(again.output()).toMatch(/st\/p150: model_error/);
    expect(await entriesAdded(k.bulkSource('fx', 'st'))).toBe(N);
  });

  it('refuses to resume over an input that changed under the job', async () => {
    const file = writeJsonl('edit.jsonl', 20, (i) => `page ${i}`);
    const args = [file, '-m', 'fx', '--job', 'edit', '--reply', 'status', '--wait'];
    expect(await backfill(args).exited).toBe(0);
    // Appending is fine: the earlier pages keep their places.
    fs.appendFileSync(file, `${JSON.stringify({ id: 'p20', text: 'one more' })}\n`);
    const appended = backfill(args);
    expect(await appended.exited, appended.output()).toBe(0);
    expect(appended.output()).toContain(
      '20 already answered, 0 submitted earlier (waiting), 1 to submit',
    );
    // A line inserted before them shifts every page: a resume would skip the wrong ones.
    fs.writeFileSync(
      file,
      `${JSON.stringify({ id: 'new', text: 'first' })}\n${fs.readFileSync(file, 'utf8')}`,
    );
    const shifted = backfill(args);
    expect(await shifted.exited).toBe(2);
    expect(shifted.output()).toContain('the input changed since job edit submitted its page 21');
    expect(await entriesAdded(k.bulkSource('fx', 'backfill'))).toBe(21);
  });

  it('status-only results carry no vectors, in both envelope forms; vectors stay the default', async () => {
    const client = new StreambedClient({ redis: REDIS_URL, prefix });
    const replyTo = `${prefix}:reply:m/modes`;
    try {
      await client.submit([{ id: 's1', source: 'm', text: 'status only' }], {
        model: 'fx',
        replyTo,
        reply: 'status',
      });
      await client.submit([{ id: 'v1', source: 'm', text: 'with vectors' }], {
        model: 'fx',
        replyTo,
      });
      await redis.xadd(
        k.request('fx'),
        '*',
        'id',
        'f1',
        'source',
        'm',
        'text',
        'flat',
        'reply_to',
        replyTo,
        'reply',
        'status',
      );
      await redis.xadd(
        k.request('fx'),
        '*',
        'id',
        'x1',
        'source',
        'm',
        'text',
        'bad',
        'reply_to',
        replyTo,
        'reply',
        'everything',
      );
      const results = new Map<string, Record<string, unknown>>();
      const statuses = new Map<string, string>();
      await until('four results', async () => {
        const entries = (await redis.xrangeBuffer(replyTo, '-', '+')) as Array<[Buffer, Buffer[]]>;
        for (const [, f] of entries) {
          const field = (name: string) =>
            f[f.findIndex((b) => b.toString() === name) + 1] as Buffer;
          results.set(field('id').toString(), unpack(field('res')) as Record<string, unknown>);
          statuses.set(field('id').toString(), field('status').toString());
        }
        return results.size === 4;
      });
      for (const id of ['s1', 'f1']) {
        expect(statuses.get(id)).toBe('ok');
        const res = results.get(id) as Record<string, unknown>;
        expect(res).not.toHaveProperty('vectors');
        expect(res).toMatchObject({ model: expect.any(String), dim: 8, hash: expect.any(String) });
      }
      const full = results.get('v1') as { vectors: Uint8Array[] };
      expect(full.vectors).toHaveLength(1);
      expect(full.vectors[0]?.byteLength).toBe(32);
      expect(statuses.get('x1')).toBe('error');
      expect(results.get('x1')).toMatchObject({ code: 'invalid' });
      // The SDK decodes a status result with no vectors.
      const decoded = [];
      for await (const r of client.results(replyTo, { blockMs: 10 })) {
        decoded.push(r);
        if (decoded.length === 4) break;
      }
      const s1 = decoded.find((r) => r.id === 's1');
      expect(s1?.status).toBe('ok');
      expect(s1?.status === 'ok' && s1.res.vectors).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
