/** The lease-fenced publish-and-ack script, against a real Redis. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { definePublish, type PublishArgs, queuePublish } from '../src/worker/publish-script.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const redis = redisClient();
const prefix = randomPrefix('lua');
const k = keys(prefix);
const stream = k.request('m');

async function deliver(consumer: string): Promise<string> {
  const id = await redis.xadd(stream, '*', 'id', 'p', 'source', 'src', 'text', 'hello');
  await redis.xreadgroup('GROUP', k.group, consumer, 'COUNT', 1, 'STREAMS', stream, '>');
  return id as string;
}

async function publish(consumer: string, entryId: string, over: Partial<PublishArgs> = {}) {
  const p = redis.pipeline();
  queuePublish(p, {
    requestStream: stream,
    resultStream: k.results(),
    dlqStream: k.dlq('m'),
    progressKey: k.progress('src'),
    group: k.group,
    consumer,
    entryId,
    resultsMaxLen: 0,
    progressField: 'done',
    resultFields: ['id', 'p', 'status', 'ok'],
    ...over,
  });
  const [[err, reply]] = (await p.exec()) as [[Error | null, unknown]];
  if (err) throw err;
  return reply;
}

beforeAll(async () => {
  definePublish(redis);
  await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('publish-and-ack', () => {
  it('writes the result, counts progress and acks when this consumer owns the entry', async () => {
    const id = await deliver('a');
    const reply = (await publish('a', id)) as [number, string];
    expect(reply[0]).toBe(1);
    expect(await redis.xrange(k.results(), reply[1], reply[1])).toEqual([
      [reply[1], ['id', 'p', 'status', 'ok']],
    ]);
    expect(await redis.hget(k.progress('src'), 'done')).toBe('1');
    expect(Number(await redis.hget(k.progress('src'), 'last_done_ms'))).toBeGreaterThan(
      Date.now() - 60_000,
    );
    expect(await redis.xpending(stream, k.group, '-', '+', 10)).toEqual([]);
  });

  it('is fenced when another consumer has claimed the entry: nothing written, nothing acked', async () => {
    const id = await deliver('a');
    await redis.xclaim(stream, k.group, 'b', 0, id);
    const before = await redis.xlen(k.results());
    expect(await publish('a', id)).toEqual([0]);
    expect(await redis.xlen(k.results())).toBe(before);
    const pending = (await redis.xpending(stream, k.group, '-', '+', 10)) as [string, string][];
    expect(pending.map(([pid, owner]) => [pid, owner])).toEqual([[id, 'b']]);
    expect(((await publish('b', id)) as [number])[0]).toBe(1);
  });

  it('writes the DLQ record with the original fields when given', async () => {
    const id = await deliver('a');
    const reply = (await publish('a', id, {
      progressField: 'failed',
      dlqFields: ['text', 'hello', 'reason', 'invalid'],
    })) as [number];
    expect(reply[0]).toBe(1);
    const dlq = await redis.xrange(k.dlq('m'), '-', '+');
    expect(dlq.at(-1)?.[1]).toEqual(['text', 'hello', 'reason', 'invalid']);
    expect(await redis.hget(k.progress('src'), 'failed')).toBe('1');
  });

  it('reports an unusable result stream (WRONGTYPE) without writing or acking', async () => {
    await redis.set(`${prefix}:reply:str`, 'x');
    const id = await deliver('a');
    const reply = (await publish('a', id, { resultStream: `${prefix}:reply:str` })) as [
      number,
      string,
    ];
    expect(reply[0]).toBe(-1);
    expect(reply[1]).toMatch(/WRONGTYPE/);
    const pending = (await redis.xpending(stream, k.group, '-', '+', 10)) as [string][];
    expect(pending.map(([pid]) => pid)).toContain(id);
  });

  it('keeps result streams to an approximate MAXLEN', async () => {
    for (let i = 0; i < 300; i++) {
      const id = await deliver('a');
      await publish('a', id, { resultStream: `${prefix}:capped`, resultsMaxLen: 100 });
    }
    const len = await redis.xlen(`${prefix}:capped`);
    expect(len).toBeGreaterThanOrEqual(100);
    expect(len).toBeLessThan(300);
  });
});
