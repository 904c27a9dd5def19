/**
 * Issue 15, part 3: Redis Cluster. Three `--cluster-enabled` nodes on
 * loopback joined with `redis-cli --cluster create`; REDIS_CLUSTER=true puts
 * every key of the fleet under the hash tag {KEY_PREFIX}, so each script and
 * transaction touches one slot. Two fixture workers (one SIGKILLed mid-run,
 * so the other reclaims) answer interactive and per-source bulk entries
 * submitted through the SDK: every entry gets exactly one result, a poisoned
 * one is dead-lettered, status, dlq list, dlq replay and backfill work on
 * the cluster, acknowledged history is trimmed, no worker ever saw CROSSSLOT, and the chart's
 * redis-cluster triggers see the backlog and then none.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { replyMatcher } from '../src/codec/envelope.js';
import { loadConfig } from '../src/config/load.js';
import { keys } from '../src/keys.js';
import type { Page } from '../src/types.js';
import { runCli } from './helpers/cli.js';
import { startCluster } from './helpers/cluster.js';
import { expectGatewayAndConsoleReach, expectGatewayReaches } from './helpers/gateway.js';
import { activeNames, chartTriggers, readTriggers } from './helpers/keda.js';
import { until } from './helpers/redis.js';
import type { PrivateRedis } from './helpers/redis-server.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const children: ChildWorker[] = [];
let seed: string;
const PREFIX = 'sbt-cluster';
const k = keys(`{${PREFIX}}`);
/** The default reply pattern, `{sbt-cluster}:reply:{source}/*`: one stream per source, in the slot. */
const reply = (source: string) => k.sourceReply(source, 'run');
const SOURCES = ['a', 'b', 'web'];
const answers = async () =>
  (await Promise.all(SOURCES.map((s) => cluster.xrange(reply(s), '-', '+')))).flat();

let nodes: PrivateRedis[] = [];
let cluster: Cluster;
let stopCluster: () => Promise<void>;

beforeAll(async () => {
  ({ nodes, cluster, stop: stopCluster } = await startCluster(3, 0));
  seed = nodes[0]!.url;
}, 40_000);

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  await stopCluster?.();
});

describe('Redis Cluster', () => {
  it('puts every key under the hash tag {KEY_PREFIX}; a reply pattern outside it is refused', () => {
    const env = { REDIS_CLUSTER: 'true', KEY_PREFIX: 'emb' };
    expect(loadConfig(env).keyPrefix).toBe('{emb}');
    expect(loadConfig({ ...env, REPLY_TO_PATTERN: '{emb}:out:*' }).replyToPattern).toBe(
      '{emb}:out:*',
    );
    expect(() => loadConfig({ ...env, REPLY_TO_PATTERN: 'app:reply:*' })).toThrow(
      /REPLY_TO_PATTERN.*must begin with "\{emb\}:"/,
    );
    // The default binds replies to the source inside the hash tag: `{emb}` stays
    // literal, only `{source}` is the envelope's source.
    const pattern = keys(loadConfig(env).keyPrefix).defaultReplyPattern();
    expect(pattern).toBe('{emb}:reply:{source}/*');
    const allowed = replyMatcher(pattern);
    expect(allowed('{emb}:reply:web/run', 'web')).toBe(true);
    expect(allowed('{emb}:reply:web/run', 'other')).toBe(false);
    expect(allowed('emb:reply:web/run', 'web')).toBe(false);
    // A prefix that is the placeholder itself would bind the hash tag to the source.
    expect(() => loadConfig({ ...env, KEY_PREFIX: 'source' })).toThrow(/KEY_PREFIX.*placeholder/);
    expect(loadConfig({ KEY_PREFIX: 'emb' }).keyPrefix).toBe('emb'); // not in Cluster mode
  });

  it('answers every entry once, reclaims, dead-letters and trims with all keys in one slot', async () => {
    const client = new StreambedClient({ redis: { url: seed, cluster: true }, prefix: PREFIX });
    expect(client.keys.prefix).toBe(`{${PREFIX}}`);
    const pages = (source: string, n: number): Page[] =>
      Array.from({ length: n }, (_, i) => ({
        id: `${source}-${i}`,
        source,
        text: `${source} ${i} @@slow:3`,
      }));
    const bulk = [...pages('a', 300), ...pages('b', 300)];
    const interactive = [...pages('web', 300), { id: 'poison', source: 'web', text: 'x @@throw' }];
    await client.submit(bulk, { model: 'fx', lane: 'bulk', replyTo: reply });
    await client.submit(interactive, { model: 'fx', replyTo: reply });
    const total = bulk.length + interactive.length;
    const triggers = chartTriggers(PREFIX, { url: seed, cluster: { enabled: true } });
    expect(new Set(triggers.map((t) => t.type))).toEqual(
      new Set(['redis-cluster-streams', 'redis-cluster']),
    );
    const before = await readTriggers(cluster as never, triggers);
    // No worker has created the groups yet: KEDA's XPENDING errors (NOGROUP) count as inactive.
    expect(activeNames(before)).toEqual(
      [`lag ${k.request('fx')}`, `list ${k.bulkBacklog('fx')}`].sort(),
    );

    const env = {
      REDIS_URL: seed,
      REDIS_CLUSTER: 'true',
      MODELS: 'fx=fixture:8',
      THREADS: 1,
      CLAIM_IDLE_MS: 1000,
      CLAIM_INTERVAL_MS: 200,
      TRIM_INTERVAL_MS: 300,
      LOG_LEVEL: 'info',
    };
    const victim = spawnWorker(PREFIX, env);
    const survivor = spawnWorker(PREFIX, env);
    children.push(victim, survivor);
    await until('some answered', async () => (await answers()).length >= 200, 30_000, 20);
    victim.proc.kill('SIGKILL');
    await victim.exited;

    await until('every entry answered', async () => (await answers()).length >= total, 40_000, 100);
    const results = await answers();
    const ids = results.map(([, f]) => f[f.indexOf('id') + 1]);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total); // exactly one result per entry
    const poison = results.find(([, f]) => f[f.indexOf('id') + 1] === 'poison');
    expect(poison?.[1][poison[1].indexOf('status') + 1]).toBe('error');
    expect(await cluster.xlen(k.dlq('fx'))).toBe(1);
    expect(await cluster.llen(k.bulkBacklog('fx'))).toBe(0);
    // The survivor took over what the victim held.
    expect(survivor.output()).toContain('reclaimed idle entries');
    // Acknowledged history is trimmed on the request streams.
    await until('trimmed', async () => (await cluster.xlen(k.request('fx'))) <= 1, 15_000, 100);

    const cli = { REDIS_URL: seed, REDIS_CLUSTER: 'true', KEY_PREFIX: PREFIX };
    const status = await runCli(['status', '--json'], cli);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(k.bulkSource('fx', 'a'));
    const dlq = await runCli(['dlq', 'list', '--json'], cli);
    expect(dlq.code, dlq.stderr).toBe(0);
    expect(dlq.stdout).toContain('poison');

    for (const w of [victim, survivor]) expect(w.output()).not.toMatch(/CROSSSLOT|MOVED|ASK /);
    // A backfill (submitted set + per-source streams + backlog list in one MULTI) and a DLQ
    // replay (one script over the DLQ, the request stream, the schedule) in the same slot.
    const corpus = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cluster-'));
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(corpus, `p${i}.md`), `page ${i}`);
    const bf = await runCli(['backfill', corpus, '-m', 'fx', '--wait'], cli);
    fs.rmSync(corpus, { recursive: true, force: true });
    expect(bf.code, bf.stderr).toBe(0);
    expect(bf.stderr).toMatch(/20\/20 answered/);
    const replay = await runCli(['dlq', 'replay', '-m', 'fx'], cli);
    expect(replay.code, replay.stderr).toBe(0);
    await until(
      'the replayed entry dead-lettered again',
      async () =>
        (await cluster.xlen(k.dlq('fx'))) === 1 && (await cluster.xlen(k.dlqReplayed('fx'))) === 1,
    );

    const readings = await readTriggers(cluster as never, triggers);
    expect(readings.filter((r) => r.error)).toEqual([]);
    expect(activeNames(readings)).toEqual([]);
    await client.close();
  }, 90_000);

  it('least privilege on the cluster: `streambed acl --redis-cluster` users, on every node, run a worker, the gateway and status', async () => {
    const PW = 'acl-pw-0123456789';
    // ACL users are per node in a Cluster: the printed line goes to each one.
    const aclUser = async (profile: string) => {
      const args = ['acl', '--profile', profile, '--user', `sb-${profile}`, '--key-prefix', PREFIX];
      const r = await runCli([...args, '--redis-cluster', 'true']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`{${PREFIX}}:`);
      for (const n of nodes) {
        const applied = spawnSync('redis-cli', ['-p', String(n.port)], {
          input: r.stdout.replace('REPLACE_WITH_PASSWORD', PW),
          encoding: 'utf8',
        });
        expect(applied.stdout.trim(), applied.stderr).toBe('OK');
      }
      return {
        REDIS_URL: `redis://sb-${profile}:${PW}@127.0.0.1:${nodes[0]!.port}`,
        REDIS_CLUSTER: 'true',
      };
    };
    // A model only this worker serves, so its answers are the least-privilege worker's.
    const worker = spawnWorker(PREFIX, { ...(await aclUser('worker')), MODELS: 'acl=fixture:8' });
    children.push(worker);
    await expectGatewayReaches(PREFIX, await aclUser('gateway'), 'acl');
    const status = await runCli(
      ['status', '--json', '--key-prefix', PREFIX],
      await aclUser('operator'),
    );
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(k.request('acl'));
    expect(worker.output()).not.toContain('NOPERM');
  }, 60_000);

  it('a node that may evict is reported by the worker and by status --check, by its address', async () => {
    const node = nodes[1]!;
    const direct = new Redis(node.url);
    await direct.config('SET', 'maxmemory', '1gb', 'maxmemory-policy', 'allkeys-lru');
    try {
      const w = spawnWorker(PREFIX, {
        REDIS_URL: seed,
        REDIS_CLUSTER: 'true',
        MODELS: 'fx=fixture:8',
      });
      children.push(w);
      await until('the worker warns', () => /Redis may evict/.test(w.output()), 30_000);
      expect(w.output()).toContain(`127.0.0.1:${node.port}: maxmemory-policy allkeys-lru`);
      const status = await runCli(['status', '--check', '--json', '--key-prefix', PREFIX], {
        REDIS_URL: seed,
        REDIS_CLUSTER: 'true',
      });
      const breaches = (
        JSON.parse(status.stdout) as { breaches: Array<{ kind: string; subject: string }> }
      ).breaches.filter((b) => b.kind === 'eviction');
      expect(breaches.map((b) => b.subject)).toEqual([`127.0.0.1:${node.port}`]);
      expect(status.code).toBe(1);
    } finally {
      await direct.config('SET', 'maxmemory', '0', 'maxmemory-policy', 'noeviction');
      direct.disconnect();
    }
  }, 60_000);

  it('the gateway and the console work on the cluster, finding its models on every node', async () => {
    children.push(
      spawnWorker(PREFIX, { REDIS_URL: seed, REDIS_CLUSTER: 'true', MODELS: 'fx=fixture:8' }),
    );
    await expectGatewayAndConsoleReach(
      PREFIX,
      { REDIS_URL: seed, REDIS_CLUSTER: 'true' },
      'fx',
      k.request('fx'),
    );
  }, 60_000);
});
