/**
 * What streambed ships names its reply streams under the envelope's source,
 * so it works under the default REPLY_TO_PATTERN (`{prefix}:reply:{source}/*`)
 * and under the earlier open one (`{prefix}:reply:*`) alike: the SDK's
 * `embed()`, `submit --wait` with pages of two sources, and a two-source
 * backfill, each against a fleet of either pattern. A backfill job started
 * by an earlier streambed (its one stream `{prefix}:reply:backfill:{job}`)
 * is finished by this one, and `forgetJob` deletes every stream of a job.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { forgetJob, jobKeys } from '../src/backfill/state.js';
import { pageKey, StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { runCli } from './helpers/cli.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-replies-'));
const fleets = {
  bound: randomPrefix('rp-bound'),
  open: randomPrefix('rp-open'),
};

beforeAll(async () => {
  await startTestWorker(fleets.bound, { MODELS: 'fx=fixture:8' });
  await startTestWorker(fleets.open, {
    MODELS: 'fx=fixture:8',
    REPLY_TO_PATTERN: `${fleets.open}:reply:*`,
  });
});

afterAll(async () => {
  await stopAllWorkers();
  for (const prefix of Object.values(fleets)) await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
});

function jsonl(name: string, n: number): string {
  const file = path.join(dir, name);
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ id: `p${i}`, source: i % 2 ? 'left' : 'right', text: `page ${i}` }),
  );
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe.each(Object.entries(fleets))('a fleet with the %s reply pattern', (_, prefix) => {
  const k = keys(prefix);

  it("answers embed() on a private stream under the caller's source, per source", async () => {
    const client = new StreambedClient({ redis: REDIS_URL, prefix });
    const [a] = await client.embed(['one text'], { model: 'fx', source: 'left' });
    const [b, c] = await client.embed(['two', 'texts'], { model: 'fx', source: 'right' });
    for (const v of [a, b, c]) expect(v).toHaveLength(8);
    const streams = (await redis.keys(`${prefix}:reply:*`)).sort();
    expect(streams).toHaveLength(2);
    expect(streams[0]?.startsWith(`${prefix}:reply:left/`)).toBe(true);
    expect(streams[1]?.startsWith(`${prefix}:reply:right/`)).toBe(true);
    // A source the fleet would refuse is refused at once, not waited on.
    await expect(
      client.embed(['x'], { model: 'fx', source: 'not a source' }),
    ).rejects.toMatchObject({ code: 'invalid' });
    await client.close();
    expect(await redis.keys(`${prefix}:reply:*`)).toEqual([]);
  });

  it('answers submit --wait for pages of two sources, and deletes its streams', async () => {
    const file = jsonl('wait.jsonl', 6);
    const r = await runCli(['submit', '-m', 'fx', '--jsonl', file, '--wait'], {
      KEY_PREFIX: prefix,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^6 ok in /m);
    expect(r.stderr).toContain(`${prefix}:reply:right/cli-`);
    expect(r.stderr).toContain(`${prefix}:reply:left/cli-`);
    expect(await redis.keys(`${prefix}:reply:*`)).toEqual([]);
  });

  it("backfills two sources, each answered on the job's stream under its source", async () => {
    const file = jsonl('two.jsonl', 40);
    const r = await runCli(['backfill', file, '-m', 'fx', '--job', 'two', '--wait'], {
      KEY_PREFIX: prefix,
    });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(await redis.xlen(k.backfillReply('left', 'two'))).toBe(20);
    expect(await redis.xlen(k.backfillReply('right', 'two'))).toBe(20);
    expect(await redis.bitcount(k.backfillAnswered('two'))).toBe(40);
    const status = await runCli(['status', '--json', '--models', 'fx'], { KEY_PREFIX: prefix });
    const jobs = (JSON.parse(status.stdout) as { jobs: Array<Record<string, unknown>> }).jobs;
    expect(jobs.find((j) => j.job === 'two')).toMatchObject({ submitted: 40, answered: 40 });
  });
});

describe('a backfill job started by an earlier streambed', () => {
  const prefix = fleets.open;
  const k = keys(prefix);

  it('is finished from its one reply stream, new pages going to the per-source ones', async () => {
    const file = jsonl('legacy.jsonl', 20);
    const job = 'legacy';
    const client = new StreambedClient({ redis: REDIS_URL, prefix });
    // What the earlier version did for the first half: one stream for the whole job,
    // the checkpoint moved in the same MULTI, and no `read:{source}` fields.
    const first = Array.from({ length: 10 }, (_, i) => ({
      id: `p${i}`,
      source: i % 2 ? 'left' : 'right',
      text: `page ${i}`,
    }));
    await client.submit(first, {
      model: 'fx',
      lane: 'bulk',
      replyTo: k.legacyBackfillReply(job),
      submittedMark: { hash: k.backfillJob(job), base: 0 },
    });
    expect(await redis.hget(k.backfillJob(job), 'last')).toBe(pageKey(first[9]!));
    await client.close();

    const r = await runCli(['backfill', file, '-m', 'fx', '--job', job, '--wait'], {
      KEY_PREFIX: prefix,
    });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/10 submitted earlier \(waiting\), 10 to submit/);
    expect(await redis.bitcount(k.backfillAnswered(job))).toBe(20);
    expect(await redis.xlen(k.legacyBackfillReply(job))).toBe(10);
    expect(await redis.xlen(k.backfillReply('left', job))).toBe(5);
    expect(await redis.xlen(k.backfillReply('right', job))).toBe(5);
    // How far the old stream was recorded stays under its old field.
    expect(await redis.hget(k.backfillJob(job), 'read')).not.toBeNull();

    await forgetJob(redis, jobKeys(k, job));
    for (const stream of [
      k.legacyBackfillReply(job),
      k.backfillReply('left', job),
      k.backfillReply('right', job),
      k.backfillJob(job),
    ])
      expect(await redis.exists(stream), stream).toBe(0);
  });
});
