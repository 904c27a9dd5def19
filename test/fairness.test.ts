/**
 * Per-source fairness in the bulk lane (issue 8 acceptance): with 20,000
 * entries of source A queued, 200 from source B, equal weights, are all done
 * before A completes 1,000 more of its own. And the per-source streams keep
 * the guarantees: a SIGKILLed worker's bulk entries are reclaimed and
 * answered once, and acknowledged history is trimmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { readBulkSchedule } from '../src/worker/bulk-scheduler.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import {
  type ChildWorker,
  spawnWorker,
  startTestWorker,
  stopAllWorkers,
} from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('fair');
const k = keys(prefix);
let client: StreambedClient;
let worker: WorkerHandle;

beforeAll(() => {
  client = new StreambedClient({ redis, prefix });
});

const children: ChildWorker[] = [];

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  await stopAllWorkers();
  await client.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const replyA = `${prefix}:reply:A/a`;
const replyB = `${prefix}:reply:B/b`;

describe('fair bulk lane', () => {
  it('serves a 200-page source before a 20,000-page one completes 1,000 more', async () => {
    const a = Array.from({ length: 20_000 }, (_, i) => ({
      id: `a${i}`,
      source: 'A',
      text: `a ${i}`,
    }));
    await client.submit(a, { model: 'fx', lane: 'bulk', replyTo: replyA });
    worker = await startTestWorker(prefix, { MODELS: 'fx=fixture:8', THREADS: 2 });
    // Let A's backlog reach a steady state first.
    await until('A well under way', async () => (await redis.xlen(replyA)) >= 1000, 30_000, 20);

    const b = Array.from({ length: 200 }, (_, i) => ({ id: `b${i}`, source: 'B', text: `b ${i}` }));
    const [firstB] = await client.submit(b, { model: 'fx', lane: 'bulk', replyTo: replyB });
    const during = await readBulkSchedule(redis, k, 'fx');
    const lastB = await until(
      'all of B answered',
      async () => {
        if ((await redis.xlen(replyB)) < 200) return undefined;
        const [[id] = []] = await redis.xrevrange(replyB, '+', '-', 'COUNT', 1);
        return id;
      },
      30_000,
      20,
    );
    // A's results from B's first submission to B's last answer (same Redis clock for both ids).
    const aMeanwhile = (await redis.xrange(replyA, firstB as string, lastB)).length;
    const aLeft = 20_000 - (await redis.xlen(replyA));
    console.log(
      `fairness: A completed ${aMeanwhile} entries while B's 200 were served (A still had ${aLeft} queued)`,
    );

    expect(aMeanwhile).toBeLessThan(1000);
    expect(aLeft).toBeGreaterThan(0); // A still had backlog throughout: the test measured contention
    const results = await redis.xrange(replyB, '-', '+');
    expect(new Set(results.map(([, f]) => f[f.indexOf('id') + 1])).size).toBe(200);
    // Visible in status: both sources scheduled while they had backlog, with equal weights.
    expect(during.sources.map((s) => s.source)).toEqual(expect.arrayContaining(['A', 'B']));
    expect(during.sources.every((s) => s.weight === 1)).toBe(true);
    expect(worker.readiness().ready).toBe(true);
  });

  it("reclaims a SIGKILLed worker's per-source bulk entries, answers each once, and trims them", async () => {
    await stopAllWorkers();
    const env = {
      MODELS: 'fx=fixture:8',
      CLAIM_IDLE_MS: 1000,
      CLAIM_INTERVAL_MS: 200,
      TRIM_INTERVAL_MS: 300,
      LOG_LEVEL: 'info',
    };
    const reply = (source: string) => `${prefix}:reply:${source}/crash`;
    const pages = ['C', 'D'].flatMap((source) =>
      Array.from({ length: 150 }, (_, i) => ({
        id: `${source}${i}`,
        source,
        text: `${source} page ${i} @@slow:20`,
      })),
    );
    await client.submit(pages, { model: 'fx', lane: 'bulk', replyTo: reply });
    const victim = spawnWorker(prefix, env);
    children.push(victim);
    const pendingOn = async (source: string) =>
      Number((await redis.xpending(k.bulkSource('fx', source), k.group))[0] ?? 0);
    await until(
      'victim holds bulk entries',
      async () => (await pendingOn('C')) + (await pendingOn('D')) > 0,
      30_000,
      10,
    );
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const survivor = spawnWorker(prefix, env);
    children.push(survivor);
    const answers = async () =>
      [
        ...(await redis.xrange(reply('C'), '-', '+')),
        ...(await redis.xrange(reply('D'), '-', '+')),
      ] as Array<[string, string[]]>;
    await until('300 answers', async () => (await answers()).length >= 300, 45_000, 100);
    const results = await answers();
    expect(results).toHaveLength(300);
    const answered = results.map(([, f]) => f[f.indexOf('id') + 1] as string);
    expect(new Set(answered)).toEqual(new Set(pages.map((p) => p.id))); // each page exactly once
    const reclaims = survivor
      .output()
      .split('\n')
      .filter((l) => l.includes('reclaimed idle entries'))
      .map((l) => JSON.parse(l) as { stream: string; byDeliveryCount: Record<string, number> });
    expect(reclaims.length).toBeGreaterThan(0);
    expect(reclaims.every((r) => k.bulkSourceOf(r.stream)?.model === 'fx')).toBe(true);
    expect(reclaims.some((r) => (r.byDeliveryCount['2'] ?? 0) > 0)).toBe(true);
    expect((await pendingOn('C')) + (await pendingOn('D'))).toBe(0);
    // Acknowledged history of the per-source streams is trimmed (the entry at the group's position stays).
    await until(
      'trimmed',
      async () =>
        (await redis.xlen(k.bulkSource('fx', 'C'))) <= 1 &&
        (await redis.xlen(k.bulkSource('fx', 'D'))) <= 1,
    );
  });
});
