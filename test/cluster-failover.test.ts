/**
 * Redis Cluster failover: three masters with a replica each on loopback; the
 * master that owns the fleet's slot (its hash tag {KEY_PREFIX}) is SIGKILLed
 * mid-run and its replica takes over. Workers and a reader follow the new
 * topology; every entry is answered, and what async replication lost is
 * counted as in test/sentinel-failover.test.ts.
 */

import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { connectRedis } from '../src/redis/connect.js';
import { startCluster } from './helpers/cluster.js';
import { settle, submitLoad, tailReplies, verdict } from './helpers/failover.js';
import { until } from './helpers/redis.js';
import type { PrivateRedis } from './helpers/redis-server.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const PREFIX = 'sbt-clfail';
const k = keys(`{${PREFIX}}`);
const reply = `${k.prefix}:reply:run`;
const TOTAL = 3000;
const children: ChildWorker[] = [];

let nodes: PrivateRedis[] = [];
let cluster: Cluster;
let stopCluster: () => Promise<void>;

beforeAll(async () => {
  ({ nodes, cluster, stop: stopCluster } = await startCluster(6, 1));
}, 40_000);

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  await stopCluster?.();
});

/** The master and replica (by port) serving the fleet's slot, as a node sees it. */
async function owners(via: Redis | Cluster): Promise<{ master: number; replica?: number }> {
  const slot = Number(await via.cluster('KEYSLOT', k.prefix));
  const lines = String(await via.cluster('NODES'))
    .trim()
    .split('\n')
    .map((l) => l.split(' '));
  const port = (l: string[]) => Number((l[1] ?? '').split('@')[0]?.split(':')[1]);
  const master = lines.find(
    (l) =>
      l[2]?.includes('master') &&
      !l[2].includes('fail') &&
      l.slice(8).some((r) => {
        const [a, b = a] = r.split('-').map(Number);
        return slot >= (a as number) && slot <= (b as number);
      }),
  );
  if (!master) throw new Error(`no master for slot ${slot}`);
  const replica = lines.find((l) => l[3] === master[0] && !l[2]?.includes('fail'));
  return { master: port(master), ...(replica && { replica: port(replica) }) };
}

describe('Redis Cluster failover', () => {
  it("the slot's master SIGKILLed mid-run: its replica takes over, every entry answered, losses counted", async () => {
    const seed = nodes[0]!.url;
    // `cluster create` returns before every node has gossiped the replica in (seconds on a busy machine).
    const before = await until('the slot has a replica', async () => {
      const o = await owners(cluster);
      return o.replica ? o : undefined;
    });
    const client = new StreambedClient({ redis: { url: seed, cluster: true }, prefix: PREFIX });
    const ids = await submitLoad(client, reply);
    // Submissions are on the replica before the failover: the test measures results.
    const onNode = (port: number) => {
      const r = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      r.on('error', () => undefined);
      return r;
    };
    const [m, r] = [onNode(before.master), onNode(before.replica!)];
    const offset = async (c: Redis, field: string) =>
      Number(new RegExp(`${field}:(\\d+)`).exec(await c.info('replication'))?.[1] ?? -1);
    await until(
      'replica caught up',
      async () => (await offset(r, 'slave_repl_offset')) >= (await offset(m, 'master_repl_offset')),
    );
    m.disconnect();

    const reader = tailReplies(connectRedis({ url: seed, cluster: true, name: 'tail' }), reply);
    const env = {
      REDIS_URL: seed,
      REDIS_CLUSTER: 'true',
      MODELS: 'fx=fixture:8',
      THREADS: 1,
      CLAIM_IDLE_MS: 2000,
      CLAIM_INTERVAL_MS: 500,
      LOG_LEVEL: 'warn',
      // Two sources answered on one stream: the earlier, open reply pattern (in the slot).
      REPLY_TO_PATTERN: `${k.prefix}:reply:*`,
    };
    children.push(spawnWorker(PREFIX, env), spawnWorker(PREFIX, env));
    await until('a third answered', () => reader.byPage.size >= TOTAL / 3, 40_000, 20);
    const answeredBefore = reader.byPage.size;
    const killedAt = Date.now();
    await nodes.find((n) => n.port === before.master)!.kill();
    await until(
      'the replica promoted',
      async () => (await owners(r)).master === before.replica,
      30_000,
      100,
    );
    const promotedMs = Date.now() - killedAt;
    r.disconnect();
    const check = connectRedis({ url: `redis://127.0.0.1:${before.replica}`, cluster: true });
    try {
      const counts = await settle({
        label: 'cluster failover',
        check,
        reply,
        reader,
        pages: ids,
        killedAt,
        extra: { answeredBeforeKill: answeredBefore, promotedMs },
      });
      // Exact accounting (once + duplicated + lost), every entry answered, duplicates explained.
      expect(verdict(counts, TOTAL)).toEqual({ exact: true, allAnswered: true, unexplained: [] });
      expect(await check.llen(k.bulkBacklog('fx'))).toBe(0);
    } finally {
      check.disconnect();
    }
  }, 120_000);
});
