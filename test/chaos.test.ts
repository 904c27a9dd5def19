/**
 * Chaos (issue 3 acceptance): three worker processes consume 20,000
 * envelopes while the harness SIGKILLs a random one every 0.6-1.2 s and starts a
 * replacement. Every envelope must end with exactly one ok result, nothing
 * pending, nothing dead-lettered.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const TOTAL = 20_000;
const MIN_KILLS = 10;
// Kill through the busy part of the run, then let the fleet finish (replacements need time to start).
const KILLS = 12;
const redis = redisClient();
const prefix = randomPrefix('chaos');
const k = keys(prefix);
const everyone: ChildWorker[] = [];

afterAll(async () => {
  for (const w of everyone) w.proc.kill('SIGKILL');
  await Promise.all(everyone.map((w) => w.exited));
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('chaos', () => {
  it(`answers ${TOTAL} envelopes exactly once while workers are SIGKILLed`, async () => {
    const model = await tinyModel({ hidden: 64 });
    const env = {
      MODELS: `tiny=${model.dir}`,
      CLAIM_IDLE_MS: 2000,
      CLAIM_INTERVAL_MS: 500,
      MAX_DELIVERIES: 100,
      LOG_LEVEL: 'info',
      READ_COUNT: 64,
    };
    const client = new StreambedClient({ redis, prefix, maxBacklog: TOTAL * 2 });
    const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu'.split(' ');
    for (let start = 0; start < TOTAL; start += 1000) {
      const pages = Array.from({ length: 1000 }, (_, j) => {
        const i = start + j;
        return {
          id: `p${i}`,
          source: `s${i % 3}`,
          text: Array.from({ length: 5 + (i % 20) }, (_, w) => words[(i + w) % words.length]).join(
            ' ',
          ),
        };
      });
      await client.submit(pages, { model: 'tiny' });
    }
    await client.close();

    const spawn = () => {
      const w = spawnWorker(prefix, env);
      everyone.push(w);
      return w;
    };
    let live = [spawn(), spawn(), spawn()];
    let kills = 0;
    const done = async () => {
      const g = await groupInfo(redis, k.request('tiny'), k.group);
      return g?.lag === 0 && g?.pending === 0 && (await redis.xlen(k.results())) >= TOTAL;
    };
    const deadline = Date.now() + 240_000;
    while (!(await done())) {
      if (Date.now() > deadline)
        throw new Error(
          `chaos did not finish: ${await redis.xlen(k.results())} results, ${kills} kills`,
        );
      await new Promise((r) => setTimeout(r, 600 + Math.random() * 600));
      if (await done()) break;
      if (kills >= KILLS) continue;
      // Only a worker that is reading holds anything: killing one still starting (a loaded
      // machine takes seconds to start node) would test nothing.
      const reading = live.filter((w) => w.output().includes('worker reading'));
      if (reading.length === 0) continue;
      const victim = reading[Math.floor(Math.random() * reading.length)] as ChildWorker;
      victim.proc.kill('SIGKILL');
      await victim.exited;
      kills++;
      live = [...live.filter((w) => w !== victim), spawn()];
    }

    const results = await redis.xrange(k.results(), '-', '+');
    const rids = new Set(results.map(([, f]) => f[f.indexOf('rid') + 1]));
    const statuses = new Set(results.map(([, f]) => f[f.indexOf('status') + 1]));
    const reclaimed = everyone
      .flatMap((w) => w.output().split('\n'))
      .filter((l) => l.includes('reclaimed idle entries'))
      .reduce((n, l) => n + (JSON.parse(l) as { reclaimed: number }).reclaimed, 0);
    console.log(`chaos: ${kills} kills, ${reclaimed} entries reclaimed, ${results.length} results`);

    expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(results).toHaveLength(TOTAL);
    expect(rids.size).toBe(TOTAL);
    expect([...statuses]).toEqual(['ok']);
    expect(reclaimed).toBeGreaterThan(0);
    expect(await redis.xlen(k.dlq('tiny'))).toBe(0);
    await until(
      'still nothing pending',
      async () => (await groupInfo(redis, k.request('tiny'), k.group))?.pending === 0,
    );
  }, 300_000);
});
