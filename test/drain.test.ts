/**
 * Graceful drain (guarantee 5) on a real process: SIGTERM during a long
 * batch finishes and acks what is in flight, then exits 0; a second signal
 * forces exit and leaves the rest pending for other consumers.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { spawnWorker } from './helpers/worker.js';

const redis = redisClient();
afterAll(() => redis.disconnect());

async function pendingOf(
  stream: string,
  group: string,
): Promise<[number, Array<[string, string]>]> {
  const [count, , , consumers] = (await redis.xpending(stream, group)) as [
    number,
    unknown,
    unknown,
    Array<[string, string]> | null,
  ];
  return [count, consumers ?? []];
}

describe('graceful drain', () => {
  it('on SIGTERM mid-batch: finishes in-flight entries with results, acks them, exits 0', async () => {
    const prefix = randomPrefix('drain');
    const k = keys(prefix);
    const client = new StreambedClient({ redis, prefix });
    const w = spawnWorker(prefix, {
      MODELS: 'fx=fixture:4',
      DRAIN_TIMEOUT_MS: 15_000,
      BATCH_SIZE: 2,
      READ_COUNT: 4,
      IN_FLIGHT_BATCHES: 2,
    });
    try {
      await until('group', async () => (await redis.exists(k.request('fx'))) === 1);
      const pages = Array.from({ length: 20 }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        text: `slow page ${i} @@slow:700`,
      }));
      await client.submit(pages, { model: 'fx' });
      const [held] = await until(
        'worker holds entries',
        async () => {
          const p = await pendingOf(k.request('fx'), k.group);
          return p[0] > 0 ? p : undefined;
        },
        20_000,
        20,
      );
      const answeredBefore = await redis.xlen(k.results());
      const t0 = Date.now();
      w.proc.kill('SIGTERM');
      const code = await w.exited;
      const tookMs = Date.now() - t0;
      expect(code).toBe(0);
      expect(tookMs).toBeLessThan(15_000);
      const [pendingAfter] = await pendingOf(k.request('fx'), k.group);
      expect(pendingAfter).toBe(0);
      const answered = await redis.xlen(k.results());
      // Everything it held when the signal came was answered, and nothing new was read after.
      expect(answered - answeredBefore).toBeGreaterThanOrEqual(held);
      expect(answered).toBeLessThan(20);
      const results = await redis.xrange(k.results(), '-', '+');
      expect(new Set(results.map(([, f]) => f[f.indexOf('rid') + 1])).size).toBe(results.length);
    } finally {
      w.proc.kill('SIGKILL');
      await client.close();
      await deletePrefix(redis, prefix);
    }
  });

  it('a second signal forces exit and leaves the unfinished entries pending', async () => {
    const prefix = randomPrefix('force');
    const k = keys(prefix);
    const client = new StreambedClient({ redis, prefix });
    const w = spawnWorker(prefix, {
      MODELS: 'fx=fixture:4',
      DRAIN_TIMEOUT_MS: 60_000,
      BATCH_SIZE: 1,
      READ_COUNT: 2,
    });
    try {
      await until('group', async () => (await redis.exists(k.request('fx'))) === 1);
      await client.submit([{ id: 'long', source: 's', text: 'very slow @@slow:20000' }], {
        model: 'fx',
      });
      await until(
        'held',
        async () => (await pendingOf(k.request('fx'), k.group))[0] === 1,
        20_000,
        20,
      );
      w.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      w.proc.kill('SIGTERM');
      const code = await w.exited;
      expect(code).not.toBe(0);
      expect((await pendingOf(k.request('fx'), k.group))[0]).toBe(1);
      expect(await redis.xlen(k.results())).toBe(0);
    } finally {
      w.proc.kill('SIGKILL');
      await client.close();
      await deletePrefix(redis, prefix);
    }
  });
});
