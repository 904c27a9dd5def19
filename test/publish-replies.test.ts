/**
 * The publish script's replies that tell a resend, a takeover and a refusing
 * Redis apart (issue 12), on a private redis-server that can be put at
 * maxmemory: {2} for an entry no longer pending (acked already), {0} for one
 * pending under another consumer, {-3} and the call stopping when Redis
 * refuses the write (OOM), and {-1} only for a reply stream of the wrong type.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { definePublish, type PublishEntry } from '../src/worker/publish-script.js';
import { publishEntries } from './helpers/publish.js';
import { redisClient } from './helpers/redis.js';
import { fillMemory, freeMemory, type PrivateRedis, privateRedis } from './helpers/redis-server.js';

const k = keys('sbt-replies');
const stream = k.request('m');
let server: PrivateRedis;
let redis: Redis;

beforeAll(async () => {
  server = await privateRedis(['--maxmemory-policy', 'noeviction']);
  redis = redisClient(server.url);
  definePublish(redis);
  await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

async function deliver(consumer: string): Promise<string> {
  const id = (await redis.xadd(stream, '*', 'text', 'hello')) as string;
  await redis.xreadgroup('GROUP', k.group, consumer, 'COUNT', 1, 'STREAMS', stream, '>');
  return id;
}

function entry(entryId: string, over: Partial<PublishEntry> = {}): PublishEntry {
  return {
    requestStream: stream,
    entryId,
    resultStream: k.results(),
    resultFields: ['rid', entryId, 'status', 'ok'],
    progress: { key: k.progress('src'), field: 'done' },
    ...over,
  };
}

const publish = (consumer: string, entries: PublishEntry[]) =>
  publishEntries(redis, { group: k.group, consumer, resultsMaxLen: 0 }, entries);

async function pending(): Promise<[string, string][]> {
  const rows = (await redis.xpending(stream, k.group, '-', '+', 1000)) as [string, string][];
  return rows.map(([id, owner]) => [id, owner]);
}

/** rid of every result written, in order. */
async function resultRids(): Promise<string[]> {
  return (await redis.xrange(k.results(), '-', '+')).map(([, f]) => f[1] as string);
}

describe('publish script replies', () => {
  it('replies {2} for an entry acked already (a resend): nothing written again', async () => {
    const id = await deliver('a');
    expect((await publish('a', [entry(id)])).replies.map((r) => r[0])).toEqual([1]);
    const before = await redis.xlen(k.results());
    const done = await redis.hget(k.progress('src'), 'done');
    // Our own resend, and another consumer's: the entry is pending nowhere.
    expect((await publish('a', [entry(id)])).replies).toEqual([[2]]);
    expect((await publish('b', [entry(id)])).replies).toEqual([[2]]);
    expect(await redis.xlen(k.results())).toBe(before);
    expect(await redis.hget(k.progress('src'), 'done')).toBe(done);
  });

  it('replies {0} for an entry pending under another consumer: nothing written, still theirs', async () => {
    const id = await deliver('a');
    await redis.xclaim(stream, k.group, 'b', 0, id);
    const before = await redis.xlen(k.results());
    expect((await publish('a', [entry(id)])).replies).toEqual([[0]]);
    expect(await redis.xlen(k.results())).toBe(before);
    expect(await pending()).toEqual([[id, 'b']]);
    expect((await publish('b', [entry(id)])).replies.map((r) => r[0])).toEqual([1]);
    expect(await pending()).toEqual([]);
  });

  it('replies {-1} for a reply stream of the wrong type, and nothing else does', async () => {
    const bad = `${k.prefix}:reply:str`;
    await redis.set(bad, 'x');
    const [a, b] = [await deliver('a'), await deliver('a')];
    const { replies } = await publish('a', [entry(a, { resultStream: bad }), entry(b)]);
    expect(replies.map((r) => r[0])).toEqual([-1, 1]);
    expect(replies[0]?.[1]).toMatch(/^WRONGTYPE/);
    expect(await redis.get(bad)).toBe('x');
    expect(await pending()).toEqual([[a, 'a']]);
    await publish('a', [entry(a)]);
    expect(await pending()).toEqual([]);
  });

  it('replies {-3} when Redis refuses the write (OOM) and stops the call there; all lands once memory is back', async () => {
    const acked = await deliver('a');
    await publish('a', [entry(acked)]);
    const theirs = await deliver('a');
    await redis.xclaim(stream, k.group, 'b', 0, theirs);
    const mine = [await deliver('a'), await deliver('a'), await deliver('a')] as [
      string,
      string,
      string,
    ];
    const bad = `${k.prefix}:reply:str`;
    const group = [
      entry(acked),
      entry(theirs),
      entry(mine[0]),
      // Wrong type, but the refusal comes first: never {-1} (reply_to_denied) for OOM.
      entry(mine[1], { resultStream: bad }),
      entry(mine[2]),
    ];
    const results = await resultRids();
    const done = await redis.hget(k.progress('src'), 'done');

    await fillMemory(redis);
    try {
      // The first entry to write is refused: the call replies for it and stops.
      const { replies, calls } = await publish('a', group);
      expect(calls).toBe(1);
      expect(replies).toHaveLength(3);
      expect(replies.slice(0, 2)).toEqual([[2], [0]]);
      expect(replies[2]?.[0]).toBe(-3);
      expect(replies[2]?.[1]).toMatch(/^OOM/);
      // A wrong-typed reply stream first in line is refused the same way.
      const alone = await publish('a', [entry(mine[1], { resultStream: bad })]);
      expect(alone.replies.map((r) => r[0])).toEqual([-3]);
      // Nothing written, counted or acked.
      expect(await resultRids()).toEqual(results);
      expect(await redis.hget(k.progress('src'), 'done')).toBe(done);
      expect(await pending()).toEqual([[theirs, 'b'], ...mine.map((id) => [id, 'a'])]);
    } finally {
      await freeMemory(redis);
    }

    const { replies } = await publish('a', group);
    expect(replies.map((r) => r[0])).toEqual([2, 0, 1, -1, 1]);
    expect(await resultRids()).toEqual([...results, mine[0], mine[2]]);
    expect(await redis.hget(k.progress('src'), 'done')).toBe(String(Number(done) + 2));
    expect(await pending()).toEqual([
      [theirs, 'b'],
      [mine[1], 'a'],
    ]);
  });
});
