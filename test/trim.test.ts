/**
 * Safe trimming (issue 3 acceptance "Trim"): after trimming, every
 * unacknowledged entry -- pending or never delivered, in any group -- is still
 * readable, and only acknowledged history below every group's position goes.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { createLogger } from '../src/log.js';
import { Trimmer, type TrimReport } from '../src/worker/trimmer.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('trim');
const k = keys(prefix);
const log = createLogger('silent');
let n = 0;
/** A fresh request stream per test. */
const nextStream = () => k.request(`m${++n}`);

afterEach(async () => {
  await stopAllWorkers();
});

afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function add(stream: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++)
    ids.push((await redis.xadd(stream, '*', 'n', String(i))) as string);
  return ids;
}

/** Deliver `count` entries to `consumer` of `group`; returns their ids. */
async function deliver(stream: string, group: string, count: number): Promise<string[]> {
  const reply = (await redis.xreadgroup(
    'GROUP',
    group,
    'c1',
    'COUNT',
    count,
    'STREAMS',
    stream,
    '>',
  )) as Array<[string, Array<[string, string[]]>]>;
  return reply[0]?.[1].map(([id]) => id) ?? [];
}

async function ids(stream: string): Promise<string[]> {
  return (await redis.xrange(stream, '-', '+')).map(([id]) => id);
}

async function trim(stream: string): Promise<TrimReport> {
  const [report] = await new Trimmer(redis, { streams: [stream], intervalMs: 0 }, log).trimOnce();
  return report as TrimReport;
}

describe('trimmer', () => {
  it('keeps pending and undelivered entries, removes acknowledged ones below the oldest pending', async () => {
    const stream = nextStream();
    const all = await add(stream, 10);
    await redis.xgroup('CREATE', stream, 'g1', '0');
    const delivered = await deliver(stream, 'g1', 6); // entries 0-5 delivered, 6-9 never
    expect(delivered).toEqual(all.slice(0, 6));
    await redis.xack(stream, 'g1', all[0]!, all[1]!, all[2]!, all[4]!); // 3 and 5 stay pending

    const report = await trim(stream);

    expect(report).toEqual({ stream, removed: 3, minId: all[3] });
    const left = await ids(stream);
    const unacked = [all[3], all[5], ...all.slice(6)];
    expect(left).toEqual(expect.arrayContaining(unacked));
    expect(left).not.toContain(all[0]);
    expect(left).not.toContain(all[2]);
    // Acknowledged but above the oldest pending entry: kept (MINID keeps everything >= it).
    expect(left).toContain(all[4]);
    // The pending entries are still claimable with their bodies.
    const claimed = (await redis.xclaim(stream, 'g1', 'c2', 0, all[3]!, all[5]!)) as Array<
      [string, string[]]
    >;
    expect(claimed.map(([id, fields]) => [id, fields.length])).toEqual([
      [all[3], 2],
      [all[5], 2],
    ]);
    // Trimming keeps the group's lag readable (KEDA scales on it).
    expect((await groupInfo(redis, stream, 'g1'))?.lag).toBe(4);
  });

  it('never trims past the slowest group', async () => {
    const stream = nextStream();
    const all = await add(stream, 10);
    await redis.xgroup('CREATE', stream, 'fast', '0');
    await redis.xgroup('CREATE', stream, 'slow', '0');
    await redis.xack(stream, 'fast', ...(await deliver(stream, 'fast', 8)));
    await redis.xack(stream, 'slow', ...(await deliver(stream, 'slow', 3)));

    const report = await trim(stream);

    // slow acked 0-2: its last-delivered entry (2) bounds the trim; 3-9 are unread by slow.
    expect(report.minId).toBe(all[2]);
    expect(await ids(stream)).toEqual(all.slice(2));
    // The slow group still reads every entry it has not seen.
    expect(await deliver(stream, 'slow', 100)).toEqual(all.slice(3));
  });

  it('trims all acknowledged history but the last delivered entry, and nothing added later', async () => {
    const stream = nextStream();
    const all = await add(stream, 5);
    await redis.xgroup('CREATE', stream, 'g1', '0');
    await redis.xack(stream, 'g1', ...(await deliver(stream, 'g1', 5)));
    const later = await add(stream, 2);

    expect((await trim(stream)).removed).toBe(4);
    expect(await ids(stream)).toEqual([all[4], ...later]);
    expect(await trim(stream)).toEqual({ stream, removed: 0, minId: all[4] });
  });

  it('leaves a stream alone when a group has read nothing, or when it has no group', async () => {
    const fresh = nextStream();
    const all = await add(fresh, 4);
    await redis.xgroup('CREATE', fresh, 'reader', '0');
    await redis.xgroup('CREATE', fresh, 'idle', '0');
    await redis.xack(fresh, 'reader', ...(await deliver(fresh, 'reader', 4)));
    expect(await trim(fresh)).toEqual({ stream: fresh, removed: 0, minId: '0-0' });
    expect(await ids(fresh)).toEqual(all);

    const groupless = nextStream();
    await add(groupless, 3);
    expect(await trim(groupless)).toEqual({ stream: groupless, removed: 0 });
    expect(await redis.xlen(groupless)).toBe(3);

    expect(await trim(k.request('missing'))).toEqual({ stream: k.request('missing'), removed: 0 });
  });

  it('runs on its own timer until stopped, and not at all with an interval of 0', async () => {
    const stream = nextStream();
    await add(stream, 20);
    await redis.xgroup('CREATE', stream, 'g1', '0');
    await redis.xack(stream, 'g1', ...(await deliver(stream, 'g1', 20)));

    const off = new Trimmer(redis, { streams: [stream], intervalMs: 0 }, log);
    off.start();
    await off.stop();
    expect(await redis.xlen(stream)).toBe(20);

    const trimmer = new Trimmer(redis, { streams: [stream], intervalMs: 20 }, log);
    trimmer.start();
    await until('trimmed by the timer', async () => (await redis.xlen(stream)) === 1);
    await trimmer.stop();
  });

  it('trims a worker’s streams under load without losing an entry', async () => {
    const model = await tinyModel();
    const worker = await startTestWorker(prefix, {
      MODELS: `tiny=${model.dir}`,
      CLAIM_IDLE_MS: 60_000,
    });
    const client = new StreambedClient({ redis, prefix });
    const reply = `${prefix}:reply:s/load`;
    const stream = k.request('tiny');
    const trimmer = new Trimmer(
      redis,
      { streams: [stream, k.request('tiny', 'bulk')], intervalMs: 5 },
      log,
    );
    try {
      trimmer.start();
      const pages = Array.from({ length: 400 }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        text: `page ${i}`,
      }));
      for (let i = 0; i < pages.length; i += 50)
        await client.submit(pages.slice(i, i + 50), { model: 'tiny', replyTo: reply });
      await until(
        'every page answered',
        async () => (await redis.xlen(reply)) === pages.length || undefined,
        60_000,
      );
      const results = await redis.xrange(reply, '-', '+');
      const answered = new Set(results.map(([, f]) => f[f.indexOf('id') + 1]));
      expect(answered.size).toBe(pages.length);
      expect(results.every(([, f]) => f[f.indexOf('status') + 1] === 'ok')).toBe(true);
      await until(
        'trimmed to the last delivered entry',
        async () => (await redis.xlen(stream)) === 1,
      );
      expect((await redis.xpending(stream, k.group))[0]).toBe(0);
      expect(worker.readiness().ready).toBe(true);
    } finally {
      await trimmer.stop();
      await client.close();
    }
  });
});
