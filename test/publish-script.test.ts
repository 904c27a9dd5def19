/** The lease-fenced publish-and-ack script, against a real Redis. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import {
  definePublish,
  MAX_BYTES_PER_CALL,
  MAX_ENTRIES_PER_CALL,
  type PublishEntry,
  type PublishReply,
} from '../src/worker/publish-script.js';
import { publishEntries } from './helpers/publish.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const redis = redisClient();
const prefix = randomPrefix('lua');
const k = keys(prefix);
const stream = k.request('m');
const otherStream = k.request('n');

async function deliver(consumer: string, from = stream): Promise<string> {
  const id = await redis.xadd(from, '*', 'id', 'p', 'source', 'src', 'text', 'hello');
  await redis.xreadgroup('GROUP', k.group, consumer, 'COUNT', 1, 'STREAMS', from, '>');
  return id as string;
}

function entry(entryId: string, over: Partial<PublishEntry> = {}): PublishEntry {
  return {
    requestStream: stream,
    entryId,
    resultStream: k.results(),
    resultFields: ['id', 'p', 'status', 'ok'],
    progress: { key: k.progress('src'), field: 'done' },
    ...over,
  };
}

function publishAll(consumer: string, entries: PublishEntry[], resultsMaxLen = 0) {
  return publishEntries(redis, { group: k.group, consumer, resultsMaxLen }, entries);
}

async function publish(consumer: string, e: PublishEntry): Promise<PublishReply> {
  const { replies } = await publishAll(consumer, [e]);
  expect(replies).toHaveLength(1);
  return replies[0] as PublishReply;
}

async function pendingOwners(from = stream): Promise<[string, string][]> {
  const pending = (await redis.xpending(from, k.group, '-', '+', 1000)) as [string, string][];
  return pending.map(([pid, owner]) => [pid, owner]);
}

beforeAll(async () => {
  definePublish(redis);
  await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
  await redis.xgroup('CREATE', otherStream, k.group, '0', 'MKSTREAM');
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('publish-and-ack', () => {
  it('writes the result, counts progress and acks when this consumer owns the entry', async () => {
    const id = await deliver('a');
    const reply = (await publish('a', entry(id))) as [number, string];
    expect(reply[0]).toBe(1);
    expect(await redis.xrange(k.results(), reply[1], reply[1])).toEqual([
      [reply[1], ['id', 'p', 'status', 'ok']],
    ]);
    expect(await redis.hget(k.progress('src'), 'done')).toBe('1');
    expect(Number(await redis.hget(k.progress('src'), 'last_done_ms'))).toBeGreaterThan(
      Date.now() - 60_000,
    );
    expect(await pendingOwners()).toEqual([]);
  });

  it("pops a per-source entry's backlog token with its ack, once: not when fenced, not on a resend", async () => {
    const source = k.bulkSource('m', 'crawl');
    await redis.xgroup('CREATE', source, k.group, '0', 'MKSTREAM');
    await redis.rpush(k.bulkBacklog('m'), '1', '1');
    const [mine, theirs] = [await deliver('a', source), await deliver('a', source)];
    await redis.xclaim(source, k.group, 'b', 0, theirs);
    const bulk = (id: string) => entry(id, { requestStream: source, backlog: k.bulkBacklog('m') });
    expect((await publish('a', bulk(theirs)))[0]).toBe(0); // fenced: token kept
    expect(await redis.llen(k.bulkBacklog('m'))).toBe(2);
    expect((await publish('a', bulk(mine)))[0]).toBe(1);
    expect((await publish('a', bulk(mine)))[0]).toBe(2); // a resend: acked already
    expect(await redis.llen(k.bulkBacklog('m'))).toBe(1);
    expect((await publish('b', bulk(theirs)))[0]).toBe(1);
    expect(await redis.llen(k.bulkBacklog('m'))).toBe(0);
  });

  it('is fenced when another consumer has claimed the entry: nothing written, nothing acked', async () => {
    const id = await deliver('a');
    await redis.xclaim(stream, k.group, 'b', 0, id);
    const before = await redis.xlen(k.results());
    const done = await redis.hget(k.progress('src'), 'done');
    expect(
      await publish('a', entry(id, { dlq: { stream: k.dlq('m'), fields: ['x', 'y'] } })),
    ).toEqual([0]);
    expect(await redis.xlen(k.results())).toBe(before);
    expect(await redis.exists(k.dlq('m'))).toBe(0);
    expect(await redis.hget(k.progress('src'), 'done')).toBe(done);
    expect(await pendingOwners()).toEqual([[id, 'b']]);
    expect((await publish('b', entry(id)))[0]).toBe(1);
  });

  it('writes the DLQ record with the original fields when given', async () => {
    const id = await deliver('a');
    const reply = await publish(
      'a',
      entry(id, {
        progress: { key: k.progress('src'), field: 'failed' },
        dlq: { stream: k.dlq('m'), fields: ['text', 'hello', 'reason', 'invalid'] },
      }),
    );
    expect(reply[0]).toBe(1);
    const dlq = await redis.xrange(k.dlq('m'), '-', '+');
    expect(dlq.at(-1)?.[1]).toEqual(['text', 'hello', 'reason', 'invalid']);
    expect(await redis.hget(k.progress('src'), 'failed')).toBe('1');
  });

  it('writes result and DLQ values byte for byte: every byte value, short and long, and UTF-8 text', async () => {
    const id = await deliver('a');
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) & 255));
    const values = [bytes(5), bytes(200), bytes(1_536), bytes(70_000), 'é😀 ∑ 中文'];
    const fields = values.flatMap((v, i) => [`f${i}`, v]);
    const out = `${prefix}:reply:bytes`;
    const reply = await publish(
      'a',
      entry(id, { resultStream: out, resultFields: fields, dlq: { stream: k.dlq('b'), fields } }),
    );
    expect(reply[0]).toBe(1);
    for (const stream of [out, k.dlq('b')]) {
      const [[, got]] = (await redis.xrangeBuffer(stream, '-', '+')) as [[Buffer, Buffer[]]];
      expect(got.filter((_, i) => i % 2 === 1)).toEqual(
        values.map((v) => (typeof v === 'string' ? Buffer.from(v) : v)),
      );
    }
  });

  it('publishes an entry given twice in one call once: the second record replies {2}', async () => {
    const id = await deliver('a');
    const out = `${prefix}:reply:twice`;
    const { replies } = await publishAll('a', [
      entry(id, { resultStream: out }),
      entry(id, { resultStream: out }),
    ]);
    expect(replies.map((r) => r[0])).toEqual([1, 2]);
    expect(await redis.xlen(out)).toBe(1);
    expect(await pendingOwners()).toEqual([]);
  });

  it('reports an unusable result stream (WRONGTYPE) without writing or acking', async () => {
    await redis.set(`${prefix}:reply:str`, 'x');
    const id = await deliver('a');
    const failed = await redis.hget(k.progress('src'), 'failed');
    const dlqLen = await redis.xlen(k.dlq('m'));
    const reply = await publish(
      'a',
      entry(id, {
        resultStream: `${prefix}:reply:str`,
        progress: { key: k.progress('src'), field: 'failed' },
        dlq: { stream: k.dlq('m'), fields: ['reason', 'invalid'] },
      }),
    );
    expect(reply[0]).toBe(-1);
    expect(reply[1]).toMatch(/WRONGTYPE/);
    expect(await redis.get(`${prefix}:reply:str`)).toBe('x');
    expect(await redis.xlen(k.dlq('m'))).toBe(dlqLen);
    expect(await redis.hget(k.progress('src'), 'failed')).toBe(failed);
    expect((await pendingOwners()).map(([pid]) => pid)).toContain(id);
    await publish('a', entry(id)); // answered elsewhere, so later tests see a clean pending list
  });

  it('writes nothing for an entry whose DLQ or progress key has the wrong type, and the rest of the group goes on', async () => {
    const badProgress = `${prefix}:progress:str`;
    const badDlq = `${prefix}:dlq:str`;
    await redis.set(badProgress, 'x');
    await redis.hset(badDlq, 'f', 'v');
    const [a, b, c] = [await deliver('a'), await deliver('a'), await deliver('a')];
    const results = await redis.xlen(k.results());
    const { replies } = await publishAll('a', [
      entry(a, { progress: { key: badProgress, field: 'done' } }),
      entry(b, { dlq: { stream: badDlq, fields: ['reason', 'invalid'] } }),
      entry(c),
    ]);
    expect(replies.map((r) => r[0])).toEqual([-2, -2, 1]);
    expect(replies[0]?.[1]).toMatch(/WRONGTYPE progress key/);
    expect(replies[1]?.[1]).toMatch(/WRONGTYPE dead-letter key/);
    // Only c's result was written and acked; a and b stay pending for a later retry.
    expect(await redis.xlen(k.results())).toBe(results + 1);
    expect(await redis.get(badProgress)).toBe('x');
    expect(await redis.hgetall(badDlq)).toEqual({ f: 'v' });
    expect((await pendingOwners()).map(([pid]) => pid)).toEqual([a, b]);
    await publishAll('a', [entry(a), entry(b)]); // clean pending list for later tests
  });

  it('gives every entry of a mixed group exactly its own outcome', async () => {
    const r1 = `${prefix}:reply:one`;
    const r2 = `${prefix}:reply:two`;
    const bad = `${prefix}:reply:hash`;
    await redis.hset(bad, 'f', 'v');
    const p1 = k.progress('mix1');
    const p2 = k.progress('mix2');
    const [okA, fenced, okB, unusable, failed, okOther, noSource] = [
      await deliver('a'),
      await deliver('a'),
      await deliver('a'),
      await deliver('a'),
      await deliver('a'),
      await deliver('a', otherStream),
      await deliver('a'),
    ] as string[];
    await redis.xclaim(stream, k.group, 'b', 0, fenced as string);
    const globalBefore = await redis.xlen(k.results());

    const { replies, calls } = await publishAll('a', [
      entry(okA as string, {
        resultStream: r1,
        resultFields: ['rid', okA as string],
        progress: { key: p1, field: 'done' },
      }),
      entry(fenced as string, {
        resultStream: r1,
        resultFields: ['rid', fenced as string],
        progress: { key: p1, field: 'done' },
      }),
      entry(okB as string, {
        resultStream: r2,
        resultFields: ['rid', okB as string],
        progress: { key: p2, field: 'deduped' },
      }),
      entry(unusable as string, {
        resultStream: bad,
        resultFields: ['rid', unusable as string],
        progress: { key: p2, field: 'done' },
      }),
      entry(failed as string, {
        resultStream: r2,
        resultFields: ['rid', failed as string],
        progress: { key: p1, field: 'failed' },
        dlq: { stream: k.dlq('m'), fields: ['rid', failed as string, 'reason', 'invalid'] },
      }),
      entry(okOther as string, {
        requestStream: otherStream,
        resultStream: r1,
        resultFields: ['rid', okOther as string],
        progress: { key: p2, field: 'done' },
      }),
      // No source: no progress hash at all.
      entry(noSource as string, { resultFields: ['rid', noSource as string], progress: undefined }),
    ]);
    expect(calls).toBe(1);
    expect(replies.map((r) => r[0])).toEqual([1, 0, 1, -1, 1, 1, 1]);
    expect(replies[3]?.[1]).toMatch(/WRONGTYPE/);

    // Each written entry's result is in its own stream under the id it was answered with.
    const rids = async (key: string) =>
      Object.fromEntries((await redis.xrange(key, '-', '+')).map(([id, f]) => [f[1], id]));
    expect(await rids(r1)).toEqual({
      [okA as string]: replies[0]?.[1],
      [okOther as string]: replies[5]?.[1],
    });
    expect(await rids(r2)).toEqual({
      [okB as string]: replies[2]?.[1],
      [failed as string]: replies[4]?.[1],
    });
    expect(await redis.xlen(k.results())).toBe(globalBefore + 1);
    expect((await rids(k.results()))[noSource as string]).toBe(replies[6]?.[1]);
    expect(await redis.type(bad)).toBe('hash');

    // Only the failure is dead-lettered.
    expect((await redis.xrange(k.dlq('m'), '-', '+')).at(-1)?.[1]).toEqual([
      'rid',
      failed as string,
      'reason',
      'invalid',
    ]);

    // Progress: each entry counted once, in its own hash and field; fenced and unusable not at all.
    const { last_done_ms: last1, ...count1 } = await redis.hgetall(p1);
    const { last_done_ms: last2, ...count2 } = await redis.hgetall(p2);
    expect(count1).toEqual({ done: '1', failed: '1' });
    expect(count2).toEqual({ deduped: '1', done: '1' });
    expect(Number(last1)).toBeGreaterThan(Date.now() - 60_000);
    expect(Number(last2)).toBeGreaterThan(Date.now() - 60_000);

    // Acked: everything written. Still pending: the fenced one (under b) and the unusable one (under a).
    expect(await pendingOwners()).toEqual([
      [fenced, 'b'],
      [unusable, 'a'],
    ]);
    expect(await pendingOwners(otherStream)).toEqual([]);

    await publishAll('b', [entry(fenced as string)]);
    await publishAll('a', [entry(unusable as string)]);
  });

  it('splits a large group into several calls, replies in order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2 * MAX_ENTRIES_PER_CALL + 5; i++) ids.push(await deliver('a'));
    const out = `${prefix}:reply:split`;
    const { replies, calls } = await publishAll(
      'a',
      ids.map((id) => entry(id, { resultStream: out, resultFields: ['rid', id] })),
    );
    expect(calls).toBe(3);
    const written = new Map((await redis.xrange(out, '-', '+')).map(([rid, f]) => [rid, f[1]]));
    expect(replies.map((r) => (r[0] === 1 ? written.get(r[1]) : r))).toEqual(ids);
    expect(await pendingOwners()).toEqual([]);
  });

  it('keeps one call to about MAX_BYTES_PER_CALL of arguments', async () => {
    const big = 'x'.repeat(Math.ceil(MAX_BYTES_PER_CALL / 3));
    const ids = [await deliver('a'), await deliver('a'), await deliver('a'), await deliver('a')];
    const { replies, calls } = await publishAll(
      'a',
      ids.map((id) => entry(id, { resultStream: `${prefix}:reply:big`, resultFields: ['v', big] })),
    );
    expect(calls).toBe(2);
    expect(replies.map((r) => r[0])).toEqual([1, 1, 1, 1]);
  });

  it('keeps result streams to an approximate MAXLEN', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push(await deliver('a'));
    const { replies } = await publishAll(
      'a',
      ids.map((id) => entry(id, { resultStream: `${prefix}:capped` })),
      100,
    );
    expect(replies.every((r) => r[0] === 1)).toBe(true);
    const len = await redis.xlen(`${prefix}:capped`);
    expect(len).toBeGreaterThanOrEqual(100);
    expect(len).toBeLessThan(300);
  });
});
