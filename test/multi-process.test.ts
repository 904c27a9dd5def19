/**
 * Real worker processes on one group: work is shared, and each entry gets
 * exactly one result even when a worker is SIGKILLed mid-batch and another
 * reclaims its entries.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const redis = redisClient();
const children: ChildWorker[] = [];
let modelDir: string;

beforeAll(async () => {
  modelDir = (await tinyModel({ hidden: 64 })).dir;
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
});
afterAll(() => redis.disconnect());

async function results(stream: string) {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, f]) => decodeResult(id.toString(), f));
}

describe('several worker processes', () => {
  it('share the work of one group and never answer an entry twice', async () => {
    const prefix = randomPrefix('mp');
    const k = keys(prefix);
    const client = new StreambedClient({ redis, prefix });
    try {
      for (let i = 0; i < 2; i++)
        children.push(
          spawnWorker(prefix, {
            MODELS: `tiny=${modelDir}`,
            READ_COUNT: 8,
            BATCH_SIZE: 4,
            IN_FLIGHT_BATCHES: 2,
            LOG_LEVEL: 'info',
          }),
        );
      // Both must be reading before the work arrives, or a fast one may take it all.
      await until(
        'both workers reading',
        () => children.every((c) => c.output().includes('worker reading')) || undefined,
        60_000,
      );
      const pages = Array.from({ length: 600 }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        text: `text number ${i} ${'pad '.repeat(i % 50)}`,
      }));
      await client.submit(pages, { model: 'tiny' });
      const all = await until(
        '600 results',
        async () => {
          const r = await results(k.results());
          return r.length >= 600 ? r : undefined;
        },
        90_000,
        200,
      );
      expect(all).toHaveLength(600);
      expect(new Set(all.map((r) => r.rid)).size).toBe(600);
      const workers = new Set(all.map((r) => (r.status === 'ok' ? r.res.worker : '')));
      expect(workers.size).toBe(2);
      expect((await redis.xpending(k.request('tiny'), k.group))[0]).toBe(0);
    } finally {
      await client.close();
      await deletePrefix(redis, prefix);
    }
  });

  it('recovers a SIGKILLed worker: its entries are reclaimed with delivery count 2 and answered once', async () => {
    const prefix = randomPrefix('kill');
    const k = keys(prefix);
    const client = new StreambedClient({ redis, prefix });
    try {
      const env = {
        MODELS: `tiny=${modelDir}`,
        CLAIM_IDLE_MS: 1500,
        CLAIM_INTERVAL_MS: 300,
        READ_COUNT: 50,
        BATCH_SIZE: 16,
      };
      const victim = spawnWorker(prefix, env);
      children.push(victim);
      await until('victim group', async () => (await redis.exists(k.request('tiny'))) === 1);
      const pages = Array.from({ length: 400 }, (_, i) => ({
        id: `p${i}`,
        source: 's',
        text: `${'long text '.repeat(60)} ${i}`,
      }));
      await client.submit(pages, { model: 'tiny' });
      // Kill it while it holds entries it has not answered.
      const held = await until(
        'victim holds entries',
        async () => {
          const p = (await redis.xpending(k.request('tiny'), k.group)) as [number, ...unknown[]];
          return p[0] > 0 ? p[0] : undefined;
        },
        30_000,
        10,
      );
      victim.proc.kill('SIGKILL');
      await victim.exited;
      expect(held).toBeGreaterThan(0);
      const survivor = spawnWorker(prefix, { ...env, LOG_LEVEL: 'info' });
      children.push(survivor);
      const all = await until(
        '400 results',
        async () => {
          const r = await results(k.results());
          return r.length >= 400 ? r : undefined;
        },
        90_000,
        200,
      );
      expect(new Set(all.map((r) => r.rid)).size).toBe(all.length);
      expect(all).toHaveLength(400);
      expect(all.every((r) => r.status === 'ok')).toBe(true);
      const reclaims = survivor
        .output()
        .split('\n')
        .filter((l) => l.includes('reclaimed idle entries'))
        .map(
          (l) => JSON.parse(l) as { reclaimed: number; byDeliveryCount: Record<string, number> },
        );
      const reclaimed = reclaims.reduce((n, r) => n + r.reclaimed, 0);
      expect(reclaimed).toBeGreaterThanOrEqual(held);
      expect(reclaims.every((r) => Object.keys(r.byDeliveryCount).every((c) => c === '2'))).toBe(
        true,
      );
      expect((await redis.xpending(k.request('tiny'), k.group))[0]).toBe(0);
    } finally {
      await client.close();
      await deletePrefix(redis, prefix);
    }
  });
});
