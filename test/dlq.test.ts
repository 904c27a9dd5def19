/**
 * `streambed dlq list | replay | purge` against DLQ records written by a real
 * worker: entries dead-lettered for max_deliveries (a consumer that kept
 * dying on them), and invalid, expired and bulk-lane entries.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { purgeDlq } from '../src/dlq/purge.js';
import { REPLAY_LUA, replayDlq } from '../src/dlq/replay.js';
import { selectDlq } from '../src/dlq/select.js';
import { keys } from '../src/keys.js';
import type { EmbedResult } from '../src/types.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { readResults } from './helpers/results.js';
import { BIN, startTestWorker, stopAllWorkers } from './helpers/worker.js';

const run = promisify(execFile);
const redis = redisClient();
const other = redisClient();
const prefix = randomPrefix('dlq');
const k = keys(prefix);
const stream = k.request('tiny');
const bulk = k.request('tiny', 'bulk');
const dlq = k.dlq('tiny');
const reply = `${prefix}:reply:dlq`;
const TEXT = 'SECRET-PAGE-TEXT';

const stuck: string[] = [];
const bad: Record<string, string> = {};
let foreign: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'dlq', ...args], {
      env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A source's row of `streambed status --json`. */
async function sourceProgress(source: string): Promise<Record<string, unknown> | undefined> {
  const { stdout } = await run(process.execPath, [BIN, 'status', '--json', '--sample-ms', '0'], {
    env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix },
  });
  const report = JSON.parse(stdout) as { sources: Array<Record<string, unknown>> };
  return report.sources.find((s) => s.source === source);
}

/** The reply stream's results by request entry id (rid). */
async function results(): Promise<Map<string, EmbedResult>> {
  return new Map((await readResults(redis, reply)).map((r) => [r.rid, r]));
}

beforeAll(async () => {
  const model = await tinyModel();
  // A consumer that took three entries and kept dying on them: delivered 5 times, never acked.
  await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
  for (let i = 0; i < 3; i++) {
    const env = pack({ id: `stuck-${i}`, source: 'alpha', text: `${TEXT} ${i}`, reply_to: reply });
    stuck.push((await redis.xadd(stream, '*', 'env', env)) as string);
  }
  // Counted as submitted, as the SDK's submit would.
  await redis.hincrby(k.progress('alpha'), 'submitted', stuck.length);
  await redis.xreadgroup('GROUP', k.group, 'ghost', 'COUNT', 3, 'STREAMS', stream, '>');
  await redis.xclaim(stream, k.group, 'ghost', 0, ...stuck, 'RETRYCOUNT', 5);

  await startTestWorker(prefix, {
    MODELS: `tiny=${model.dir}`,
    // Several sources answered on one stream: the earlier, open reply pattern.
    REPLY_TO_PATTERN: `${prefix}:reply:*`,
    CLAIM_IDLE_MS: 100,
    CLAIM_INTERVAL_MS: 50,
    MAX_DELIVERIES: 2,
    TRIM_INTERVAL_MS: 0,
  });
  const add = (key: string, ...fields: (string | Buffer)[]) =>
    redis.xadd(key, '*', ...fields) as Promise<string>;
  bad.noId = await add(stream, 'source', 'beta', 'text', `${TEXT} no id`, 'reply_to', reply);
  bad.expired = await add(
    stream,
    'env',
    pack({ id: 'exp-1', source: 'beta', text: `${TEXT} late`, deadline_ms: 1, reply_to: reply }),
  );
  bad.empty = await add(bulk, 'id', 'g-empty', 'source', 'gamma', 'text', '  ', 'reply_to', reply);
  bad.garbage = await add(stream, 'env', Buffer.from([0xc1, 0x00, 0xff]));
  await until('seven dead letters', async () => (await redis.xlen(dlq)) === 7 || undefined);
  foreign = (await redis.xadd(dlq, '*', 'note', 'not written by a worker')) as string;
});

afterAll(async () => {
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
  other.disconnect();
});

describe('dlq', () => {
  it('lists by model, source, reason, ids and limit, with routing and no text', async () => {
    const all = await selectDlq(redis, k, {});
    expect(all.records).toHaveLength(8);
    expect(all.more).toBe(false);

    const alpha = await selectDlq(redis, k, { model: 'tiny', source: 'alpha' });
    expect(alpha.records.map((r) => r.rid).sort()).toEqual([...stuck].sort());
    for (const r of alpha.records) {
      expect(r).toMatchObject({ reason: 'max_deliveries', stream, source: 'alpha', model: 'tiny' });
      expect(r.id).toMatch(/^stuck-\d$/);
      expect(r.deliveries).toBeGreaterThan(2);
      expect(r.failedMs).toBeGreaterThan(Date.now() - 120_000);
    }

    const expired = await selectDlq(redis, k, { reason: 'expired' });
    expect(expired.records.map((r) => [r.rid, r.id, r.source])).toEqual([
      [bad.expired, 'exp-1', 'beta'],
    ]);
    const invalid = await selectDlq(redis, k, { reason: 'invalid' });
    expect(invalid.records.map((r) => r.rid).sort()).toEqual(
      [bad.noId, bad.empty, bad.garbage].sort(),
    );
    // Ids can collide across the two streams within one millisecond: match on the page id too.
    expect(invalid.records.find((r) => r.rid === bad.empty && r.id === 'g-empty')?.stream).toBe(
      bulk,
    );
    expect(
      (await selectDlq(redis, k, { source: 'beta', reason: 'invalid' })).records.map((r) => r.rid),
    ).toEqual([bad.noId]);
    const two = await selectDlq(redis, k, { limit: 2 });
    expect([two.records.length, two.more]).toEqual([2, true]);
    expect(
      (await selectDlq(redis, k, { ids: [foreign, '1-1'] })).records.map((r) => r.reason),
    ).toEqual([undefined]);
    expect((await selectDlq(redis, k, { model: 'other' })).records).toEqual([]);
    await expect(selectDlq(redis, k, { reason: 'nope' })).rejects.toThrow(/--reason/);

    const table = await cli('list');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(bad.expired);
    expect(table.stdout.split('\n')).toHaveLength(1 + 8 + 1);
    const json = await cli('list', '--json', '--source', 'alpha');
    expect(JSON.parse(json.stdout).entries).toHaveLength(3);
    for (const out of [table.stdout, json.stdout]) expect(out).not.toContain(TEXT);
    expect((await cli('list', '--reason', 'bogus')).code).not.toBe(0);
  });

  it('replays max_deliveries entries to their stream once the cause is gone: ok results', async () => {
    expect(await sourceProgress('alpha')).toMatchObject({ submitted: 3, done: 0, failed: 3 });
    const dry = await replayDlq(redis, k, { reason: 'max_deliveries' }, { dryRun: true });
    expect(dry.replayed).toHaveLength(3);
    expect(await redis.xlen(dlq)).toBe(8);

    const out = await cli('replay', '--reason', 'max_deliveries', '--json');
    expect(out.code).toBe(0);
    expect(out.stdout).not.toContain(TEXT);
    const report = JSON.parse(out.stdout) as Awaited<ReturnType<typeof replayDlq>>;
    expect(report.replayed).toHaveLength(3);
    expect(report.skipped).toEqual([]);
    const newIds = report.replayed.map((r) => r.newId as string);

    const answered = await until('replayed entries answered', async () => {
      const m = await results();
      return newIds.every((id) => m.has(id)) ? m : undefined;
    });
    for (const [i, id] of newIds.entries()) {
      const r = answered.get(id);
      expect(r?.status).toBe('ok');
      expect(r?.id).toBe(report.replayed[i]?.id);
    }
    // The originals never got a result: they went straight to the DLQ with max_deliveries.
    expect(stuck.map((id) => answered.get(id)?.status)).toEqual(['error', 'error', 'error']);

    expect((await selectDlq(redis, k, { reason: 'max_deliveries' })).records).toEqual([]);
    const log = await redis.xrange(k.dlqReplayed('tiny'), '-', '+');
    expect(log.map(([, f]) => f[f.indexOf('new_rid') + 1]).sort()).toEqual([...newIds].sort());
    expect(log.map(([, f]) => f[f.indexOf('rid') + 1]).sort()).toEqual([...stuck].sort());
    expect(await redis.hget(k.progress('alpha'), 'replayed')).toBe('3');
    // Each replayed entry was counted failed, then done: progress shows it once, as done.
    expect(await redis.hmget(k.progress('alpha'), 'done', 'failed')).toEqual(['3', '3']);
    expect(await sourceProgress('alpha')).toMatchObject({
      submitted: 3,
      done: 3,
      failed: 0,
      replayed: 3,
      finished: 3,
      percent: 100,
      state: 'done',
    });
    expect((await redis.xpending(stream, k.group))[0]).toBe(0);
  });

  it('replays to the lane the entry came from; a still-bad entry comes back to the DLQ', async () => {
    const [dlqId] = (await selectDlq(redis, k, { source: 'gamma' })).records.map((r) => r.dlqId);
    // An invalid entry can only fail again: skipped unless forced.
    const refused = await replayDlq(redis, k, { ids: [dlqId as string] });
    expect(refused.replayed).toEqual([]);
    expect(refused.skipped[0]?.why).toMatch(/dead-lettered as invalid.*--force/);
    const report = await replayDlq(redis, k, { ids: [dlqId as string] }, { force: true });
    const newId = report.replayed[0]?.newId as string;
    expect(report.replayed.map((r) => r.stream)).toEqual([bulk]);
    expect(await redis.xrange(bulk, newId, newId)).toHaveLength(1);
    const again = await until('dead-lettered again', async () =>
      (await selectDlq(redis, k, { source: 'gamma' })).records.find((r) => r.rid === newId),
    );
    expect(again).toMatchObject({ reason: 'invalid', stream: bulk, deliveries: 1 });
    expect(again.dlqId).not.toBe(dlqId);
  });

  it('replays an entry once when two operators replay it at the same time', async () => {
    const before = await redis.xlen(stream);
    const ids = [await dlqIdOf(bad.noId as string)];
    const reports = await Promise.all([
      replayDlq(redis, k, { ids }, { force: true }),
      replayDlq(other, k, { ids }, { force: true }),
    ]);
    expect(reports.flatMap((r) => r.replayed)).toHaveLength(1);
    expect(await redis.xlen(stream)).toBe(before + 1);
    // The script itself: a DLQ entry that is gone is neither re-submitted nor logged.
    const log = await redis.xlen(k.dlqReplayed('tiny'));
    const [dlqKey, target, logKey, progress] = [
      dlq,
      stream,
      k.dlqReplayed('tiny'),
      k.progress('beta'),
    ];
    const reply = await redis.eval(
      REPLAY_LUA,
      6,
      dlqKey,
      target,
      logKey,
      progress,
      k.bulkSchedule('tiny'),
      k.bulkBacklog('tiny'),
      ids[0]!,
      '1',
      '10',
      '1',
      '',
      'id',
      'x',
    );
    expect(reply).toEqual([0]);
    expect([await redis.xlen(stream), await redis.xlen(k.dlqReplayed('tiny'))]).toEqual([
      before + 1,
      log,
    ]);
  });

  it('skips a record it cannot replay and leaves it in place', async () => {
    const report = await replayDlq(redis, k, { ids: [foreign] });
    expect(report.replayed).toEqual([]);
    expect(report.skipped[0]?.why).toMatch(/not a streambed DLQ record/);
    expect(await redis.xrange(dlq, foreign, foreign)).toHaveLength(1);
  });

  it('purges only with --yes; --dry-run changes nothing', async () => {
    const refused = await cli('purge', '--reason', 'expired');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    const dry = await purgeDlq(redis, k, { reason: 'expired' }, { dryRun: true });
    expect(dry.purged.map((r) => r.rid)).toEqual([bad.expired]);
    expect((await selectDlq(redis, k, { reason: 'expired' })).records).toHaveLength(1);

    const purged = await purgeDlq(redis, k, { reason: 'expired' });
    expect([purged.deleted, purged.purged.length]).toEqual([1, 1]);
    expect((await selectDlq(redis, k, { reason: 'expired' })).records).toEqual([]);

    const out = await cli('purge', '--ids', foreign, '--yes', '--json');
    expect(JSON.parse(out.stdout).deleted).toBe(1);
    expect(await redis.xrange(dlq, foreign, foreign)).toEqual([]);
  });
});

async function dlqIdOf(rid: string): Promise<string> {
  const r = (await selectDlq(redis, k, {})).records.find((x) => x.rid === rid);
  return r?.dlqId as string;
}
