/**
 * The hold bound (issue 12 acceptance): one worker process serving two and
 * three models, with a backlog on every model's interactive stream and on
 * its bulk lane (per-source streams), never holds more than
 * maxHeld = (IN_FLIGHT_BATCHES + 2) x BATCH_SIZE entries, whatever
 * READ_COUNT says. What it holds is read from Redis itself: the sum of its
 * pending counts over every request stream, sampled atomically (MULTI)
 * every ~20 ms for the whole run. Every entry is answered exactly once.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { maxHeldEntries } from '../src/config/load.js';
import { keys } from '../src/keys.js';
import {
  answersById,
  deletePrefix,
  notAnsweredOnce,
  randomPrefix,
  redisClient,
  until,
} from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const redis = redisClient();
const prefixes: string[] = [];
const children: ChildWorker[] = [];
const SOURCES = ['src0', 'src1', 'src2'];
const INTERACTIVE = 120;
const BULK_PER_SOURCE = 40;
const env = {
  THREADS: 1,
  BATCH_SIZE: 8,
  IN_FLIGHT_BATCHES: 2,
  // Far above the bound: the hold bound, not READ_COUNT, must limit reads.
  READ_COUNT: 200,
  BLOCK_MS: 100,
};

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

/** Entries pending under `consumer`, summed over `streams`, in one atomic snapshot. */
async function held(streams: readonly string[], group: string, consumer: string) {
  const m = redis.multi();
  for (const s of streams) m.xpending(s, group);
  let total = 0;
  for (const [err, summary] of (await m.exec()) ?? []) {
    if (err) continue; // a per-source bulk stream gets its group on its first read
    const owners = ((summary as unknown[])[3] ?? []) as Array<[string, string]>;
    for (const [owner, count] of owners) if (owner === consumer) total += Number(count);
  }
  return total;
}

describe('hold bound', () => {
  it.each([2, 3])(
    'holds at most maxHeld entries with %i models, interactive and bulk backlog',
    async (n) => {
      const prefix = randomPrefix(`hold${n}`);
      prefixes.push(prefix);
      const k = keys(prefix);
      const models = ['a', 'b', 'c'].slice(0, n);
      const consumer = `hold-${n}`;
      const maxHeld = maxHeldEntries(
        { batchSize: env.BATCH_SIZE, inFlightBatches: env.IN_FLIGHT_BATCHES },
        env.THREADS,
      );
      const client = new StreambedClient({ redis, prefix, maxBacklog: 1_000_000 });
      // 3 ms a text: the backlog outlasts the bound by far, on every stream, for seconds.
      const all: Array<{ id: string }> = [];
      for (const model of models) {
        const pages = (lane: string, count: number, source: (i: number) => string) =>
          Array.from({ length: count }, (_, i) => ({
            id: `${model}-${lane}-${i}`,
            source: source(i),
            text: `${model} ${lane} ${i} @@slow:3`,
          }));
        const live = pages('i', INTERACTIVE, () => 'live');
        const bulk = pages('b', BULK_PER_SOURCE * SOURCES.length, (i) => SOURCES[i % 3] as string);
        await client.submit(live, { model });
        await client.submit(bulk, { model, lane: 'bulk' });
        all.push(...live, ...bulk);
      }
      const streams = models.flatMap((m) => [
        k.request(m),
        k.request(m, 'bulk'),
        ...SOURCES.map((s) => k.bulkSource(m, s)),
      ]);

      const worker = spawnWorker(prefix, {
        ...env,
        MODELS: models.map((m) => `${m}=fixture:8`).join(','),
        CONSUMER_NAME: consumer,
      });
      children.push(worker);
      const samples: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          samples.push(await held(streams, k.group, consumer));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      try {
        await until(
          'every entry answered',
          async () => (await redis.xlen(k.results())) >= all.length,
          40_000,
          100,
        );
      } finally {
        sampling = false;
        await sampler;
      }
      const max = Math.max(...samples);
      console.log(
        `hold-bound (${n} models, ${all.length} entries): max held ${max} vs bound ${maxHeld} ` +
          `over ${samples.length} samples`,
      );
      expect(max).toBeLessThanOrEqual(maxHeld);
      // The bound was actually pressed against, not merely never approached.
      expect(max).toBeGreaterThanOrEqual(maxHeld / 2);
      expect(samples.length).toBeGreaterThan(50);
      expect(notAnsweredOnce(all, await answersById(redis, [k.results()]))).toEqual({});
      expect(await held(streams, k.group, consumer)).toBe(0);
      await client.close();
    },
  );
});
