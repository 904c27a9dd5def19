/**
 * Issue 15, part 2: Redis Sentinel. A master, a replica and three sentinels
 * on loopback (an ACL user on the data nodes, a password on the sentinels,
 * each given as streambed's settings say); the SDK submits 3,000 entries
 * through the sentinels (and the test waits until the replica has them),
 * two fixture workers answer them,
 * and the master is SIGKILLed mid-run. The workers follow the promoted
 * replica and every entry is answered. Async replication may lose results
 * (and their acks) that the old master had acknowledged: the test measures
 * what a reader tailing the reply stream through the failover saw (answered
 * once, duplicated, never) and checks that every duplicate is explained by a
 * result lost with the old master or a second result on the new one. KEDA's
 * sentinel triggers and `streambed status` read the new master too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { connectRedis, type RedisTarget } from '../src/redis/connect.js';
import { runCli } from './helpers/cli.js';
import { settle, submitLoad, tailReplies, verdict } from './helpers/failover.js';
import { expectGatewayAndConsoleReach } from './helpers/gateway.js';
import { activeNames, chartTriggers, readTriggers } from './helpers/keda.js';
import { until } from './helpers/redis.js';
import { replicaCaughtUp, type SentinelSetup, sentinelSetup } from './helpers/sentinel.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = 'sbt-sentinel';
const k = keys(prefix);
const reply = `${prefix}:reply:run`;
const TOTAL = 3000;

let setup: SentinelSetup;
let target: RedisTarget;
const children: ChildWorker[] = [];

const auth = { user: 'sb-fleet', password: 'fleet-s3cret' };
const sentinelPassword = 'sentinel-s3cret';

beforeAll(async () => {
  setup = await sentinelSetup({ auth, sentinelPassword });
  // The URL's host is not used in Sentinel mode: only its credentials, database and TLS.
  target = {
    url: `redis://${auth.user}:${auth.password}@unused.invalid:1`,
    sentinels: setup.sentinels,
    sentinelName: setup.name,
    sentinelPassword,
  };
}, 120_000);

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  await setup?.stop();
});

describe('Redis Sentinel', () => {
  it('workers follow a failover (master SIGKILLed mid-run): every entry answered, losses counted', async () => {
    const client = new StreambedClient({ redis: target, prefix });
    const ids = await submitLoad(client, reply);
    // Submitted entries are durable before the failover: the test measures results, not submissions.
    await replicaCaughtUp(setup);
    // KEDA in Sentinel mode asks the sentinels for the master and reads the same keys there.
    const triggers = chartTriggers(prefix, {
      url: target.url,
      sentinel: { hosts: setup.sentinels.split(','), masterName: setup.name },
    });
    expect(new Set(triggers.map((t) => t.type))).toEqual(
      new Set(['redis-sentinel-streams', 'redis-sentinel']),
    );
    const viaSentinels = connectRedis({ ...target, name: 'keda' });
    expect(activeNames(await readTriggers(viaSentinels, triggers))).toEqual(
      [`lag ${k.request('fx')}`, `list ${k.bulkBacklog('fx')}`].sort(),
    );
    viaSentinels.disconnect();

    const reader = tailReplies(connectRedis({ ...target, name: 'tail' }), reply);
    const env = {
      REDIS_URL: target.url,
      REDIS_SENTINELS: setup.sentinels,
      REDIS_SENTINEL_NAME: setup.name,
      REDIS_SENTINEL_PASSWORD: sentinelPassword,
      MODELS: 'fx=fixture:8',
      THREADS: 1,
      CLAIM_IDLE_MS: 2000,
      CLAIM_INTERVAL_MS: 500,
      LOG_LEVEL: 'warn',
      // Two sources answered on one stream: the earlier, open reply pattern.
      REPLY_TO_PATTERN: `${prefix}:reply:*`,
    };
    children.push(spawnWorker(prefix, env), spawnWorker(prefix, env));
    await until('a third answered', () => reader.byPage.size >= TOTAL / 3, 40_000, 20);
    const killedAt = Date.now();
    const answeredBefore = reader.byPage.size;
    await setup.master.kill();

    await until(
      'the replica promoted',
      async () => (await setup.masterPort()) === setup.replica.port,
      30_000,
      100,
    );
    const promotedMs = Date.now() - killedAt;
    const onNew = connectRedis({ ...target, name: 'check' });
    try {
      const counts = await settle({
        label: 'sentinel failover',
        check: onNew,
        reply,
        reader,
        pages: ids,
        killedAt,
        extra: { answeredBeforeKill: answeredBefore, promotedMs },
      });
      // Exact accounting (once + duplicated + lost), every entry answered, duplicates explained.
      expect(verdict(counts, TOTAL)).toEqual({ exact: true, allAnswered: true, unexplained: [] });
      expect(await setup.masterPort()).toBe(setup.replica.port);
      // Nothing is left for anyone: no lag, nothing pending, no backlog token.
      for (const stream of [k.request('fx'), k.bulkSource('fx', 'a'), k.bulkSource('fx', 'b')]) {
        const [pending] = (await onNew.xpending(stream, k.group)) as [number];
        expect(Number(pending), stream).toBe(0);
      }
      expect(await onNew.llen(k.bulkBacklog('fx'))).toBe(0);
      const readings = await readTriggers(onNew, triggers);
      expect(readings.filter((r) => r.error)).toEqual([]);
      expect(activeNames(readings)).toEqual([]); // KEDA may scale the fleet to zero again
      // The CLI takes the same settings: status reads the new master through the sentinels.
      const status = await runCli(['status', '--json', '--key-prefix', prefix], {
        REDIS_URL: target.url,
        REDIS_SENTINELS: setup.sentinels,
        REDIS_SENTINEL_NAME: setup.name,
        REDIS_SENTINEL_PASSWORD: sentinelPassword,
      });
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain(k.request('fx'));
    } finally {
      onNew.disconnect();
    }
  }, 120_000);

  it('the gateway and the console find the (new) master through the sentinels too', async () => {
    // REDIS_URL's host is unused.invalid: only the sentinels can lead them to the master.
    await expectGatewayAndConsoleReach(
      prefix,
      {
        REDIS_URL: target.url,
        REDIS_SENTINELS: setup.sentinels,
        REDIS_SENTINEL_NAME: setup.name,
        REDIS_SENTINEL_PASSWORD: sentinelPassword,
      },
      'fx',
      k.request('fx'),
    );
  }, 60_000);
});
