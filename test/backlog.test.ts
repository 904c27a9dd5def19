/**
 * Producer backpressure's cached reading (src/client/backlog.ts): a steady
 * producer re-reads Redis every 250 ms instead of counting its own adds
 * forever, so it is refused only when the stream really is backed up. The
 * gateway (429 before queueing) depends on it.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Backlog } from '../src/client/backlog.js';
import { keys as buildKeys } from '../src/keys.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';

const prefix = randomPrefix('backlog');
const k = buildKeys(prefix);
let redis: Redis;

beforeAll(async () => {
  redis = redisClient();
  await redis.xgroup('CREATE', k.request('m'), k.group, '$', 'MKSTREAM');
});

afterAll(async () => {
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe('Backlog', () => {
  it('re-reads Redis under steady admits, so a keeping-up stream is never refused', async () => {
    const backlog = new Backlog(redis, k.group, 3, 'fail');
    // 12 admits 100 ms apart: more than the limit in all, never more than 3 per 250 ms reading.
    for (let i = 0; i < 12; i++) {
      await backlog.admit(k.request('m'), 1);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('refuses above the limit of entries really waiting (lag + pending)', async () => {
    const stream = k.request('m');
    for (let i = 0; i < 5; i++) await redis.xadd(stream, '*', 'id', `p${i}`);
    const backlog = new Backlog(redis, k.group, 3, 'fail');
    await expect(backlog.admit(stream, 1)).rejects.toMatchObject({ code: 'backpressure' });
  });
});
