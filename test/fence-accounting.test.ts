/**
 * Fence accounting (issue 12 acceptance): one worker alone, whose Redis
 * connections are killed again and again (CLIENT KILL) while 2,000 entries
 * flow -- and, since a kill only by luck lands between a write running and
 * its reply arriving, a proxy that loses the replies of result writes that
 * did run. A write sent again that finds its entry acked already is our own
 * write landing: counted as answered, never as fenced. A single consumer is
 * never fenced; every entry is answered exactly once; nothing is
 * dead-lettered; 'answered' fires once per entry.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { type LossyProxy, lossyProxy } from './helpers/lossy-proxy.js';
import { answersById, groupInfo, notAnsweredOnce, randomPrefix, until } from './helpers/redis.js';
import { type PrivateRedis, privateServers } from './helpers/redis-server.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const TOTAL = 2_000;
const KILLS = 8;
const MODEL = 'fx';
const servers = privateServers();
const proxies: LossyProxy[] = [];

afterEach(stopAllWorkers);
afterAll(async () => {
  await stopAllWorkers();
  await Promise.all(proxies.map((p) => p.close()));
  await servers.stopAll();
});

/** Kill the worker's connections named `{consumer}:{which}`; returns how many were killed. */
async function killConnections(admin: Redis, consumer: string, which: string[]): Promise<number> {
  const names = new Set(which.map((w) => `${consumer}:${w}`));
  const list = (await admin.client('LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1];
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    if (!id || !name || !names.has(name)) continue;
    killed += Number(await admin.client('KILL', 'ID', id));
  }
  return killed;
}

/**
 * One worker on a private Redis (reached at `url(server)`), `TOTAL` entries
 * submitted; `meanwhile` runs while they flow. Asserts the accounting.
 */
async function run(
  tag: string,
  url: (server: PrivateRedis) => Promise<string>,
  meanwhile: (ctx: {
    redis: Redis;
    consumer: string;
    results: () => Promise<number>;
  }) => Promise<string>,
): Promise<void> {
  const { server, redis } = await servers.start();
  const prefix = randomPrefix(tag);
  const k = keys(prefix);
  const client = new StreambedClient({ redis, prefix, maxBacklog: TOTAL * 2 });
  // 2 ms a text: a run of several seconds, long enough for every fault to land mid-flow.
  const pages = Array.from({ length: TOTAL }, (_, i) => ({
    id: `p${i}`,
    source: `s${i % 4}`,
    text: `page ${i} @@slow:2`,
  }));
  await client.submit(pages, { model: MODEL });

  const worker = await startTestWorker(prefix, {
    REDIS_URL: await url(server),
    MODELS: `${MODEL}=fixture:8`,
    BATCH_SIZE: 16,
    // A read whose reply was lost leaves entries pending under us that we never saw:
    // the reclaimer takes them back after CLAIM_IDLE_MS.
    CLAIM_IDLE_MS: 1_500,
    CLAIM_INTERVAL_MS: 300,
    // Every fault logs a reconnection warning: keep the test's output to its numbers.
    LOG_LEVEL: 'error',
  });
  let fenced = 0;
  let answered = 0;
  const outcomes: Record<string, number> = {};
  worker.events.on('fenced', () => fenced++);
  worker.events.on('answered', (a) => {
    answered++;
    outcomes[a.outcome] = (outcomes[a.outcome] ?? 0) + 1;
  });

  const results = () => redis.xlen(k.results());
  const faults = await meanwhile({ redis, consumer: worker.consumer, results });
  await until('every entry answered', async () => (await results()) >= TOTAL);
  await until(
    'nothing pending',
    async () => (await groupInfo(redis, k.request(MODEL), k.group))?.pending === 0,
  );
  // Late duplicates would land after the last one: give them the time to.
  await new Promise((r) => setTimeout(r, 500));
  console.log(
    `fence-accounting (${tag}): ${faults}; answered ${answered} ` +
      `(${JSON.stringify(outcomes)}), fenced ${fenced}`,
  );
  expect(fenced).toBe(0);
  expect(notAnsweredOnce(pages, await answersById(redis, [k.results()]))).toEqual({});
  expect(await results()).toBe(TOTAL);
  expect(answered).toBe(TOTAL);
  expect(await redis.exists(k.dlq(MODEL))).toBe(0);
  await client.close();
}

/** Wait until `at` results are written. */
const reached = (results: () => Promise<number>, at: number) =>
  until('results flowing', async () => (await results()) >= at, 30_000, 5);

describe('fence accounting', () => {
  it(`never fences a lone consumer whose connections are killed; ${TOTAL} answered once`, async () => {
    await run(
      'fence-kill',
      async (server) => server.url,
      async ({ redis, consumer, results }) => {
        // Kill the writer's connection, the reader's, or both, in turn, as results land.
        const which = [['cmd'], ['read'], ['cmd', 'read']];
        let killed = 0;
        for (let i = 0; i < KILLS; i++) {
          await reached(results, ((i + 1) * TOTAL) / (KILLS + 2));
          killed += await killConnections(redis, consumer, which[i % which.length] as string[]);
        }
        expect(killed).toBeGreaterThanOrEqual(KILLS);
        return `${killed} connections killed over ${KILLS} kills`;
      },
    );
  });

  it(`counts a result write whose reply was lost as answered, not fenced; ${TOTAL} answered once`, async () => {
    await run(
      'fence-lost',
      async (server) => {
        const proxy = await lossyProxy({ host: '127.0.0.1', port: server.port });
        proxies.push(proxy);
        return proxy.url;
      },
      async ({ results }) => {
        const proxy = proxies.at(-1) as LossyProxy;
        for (let i = 0; i < KILLS; i++) {
          await reached(results, ((i + 1) * TOTAL) / (KILLS + 2));
          // The publish script's packed records carry each answer's `rid` field name
          // (a msgpack fixstr: 0xa3, then the bytes).
          await proxy.loseReplyTo(Buffer.from([0xa3, ...Buffer.from('rid')]));
        }
        return `${KILLS} result-write replies lost`;
      },
    );
  });
});
