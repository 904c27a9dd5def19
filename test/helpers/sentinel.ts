/**
 * A Redis Sentinel setup on loopback for failover tests: a master, one
 * replica (`--replicaof`) and three `redis-server --sentinel` processes with
 * quorum 2, all private children. `stop()` kills them and removes their
 * directories.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';

import { until } from './redis.js';
import { freePort, type PrivateRedis, privateRedis } from './redis-server.js';

export interface SentinelSetup {
  name: string;
  master: PrivateRedis;
  replica: PrivateRedis;
  /** `127.0.0.1:port,...`: REDIS_SENTINELS. */
  sentinels: string;
  /** The master's port as the sentinels report it now. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

function quiet(redis: Redis): Redis {
  redis.on('error', () => undefined);
  return redis;
}

export interface SentinelOptions {
  name?: string;
  /** An ACL user on the master and replica (the default user off): what REDIS_URL carries. */
  auth?: { user: string; password: string };
  /** The sentinels' own `requirepass`: REDIS_SENTINEL_PASSWORD. */
  sentinelPassword?: string;
}

/**
 * Replication and sentinel discovery take a few seconds; this waits until a
 * failover can be voted. Tried twice: a free port found for a sentinel can be
 * taken by a parallel test before the sentinel binds it, and on a loaded
 * machine discovery can miss its wait; a second setup on fresh ports settles it.
 */
export async function sentinelSetup(opts: SentinelOptions = {}): Promise<SentinelSetup> {
  try {
    return await sentinelSetupOnce(opts);
  } catch {
    return sentinelSetupOnce(opts);
  }
}

async function sentinelSetupOnce(opts: SentinelOptions): Promise<SentinelSetup> {
  const name = opts.name ?? 'sbmaster';
  const { auth, sentinelPassword } = opts;
  const replicaAuth = auth ? ['--masteruser', auth.user, '--masterauth', auth.password] : [];
  const master = await privateRedis(replicaAuth, auth);
  const replica = await privateRedis(
    ['--replicaof', '127.0.0.1', String(master.port), ...replicaAuth],
    auth,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-sentinel-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  for (const port of ports) {
    const conf = path.join(dir, `sentinel-${port}.conf`);
    // Sentinels rewrite their config file as they learn the topology: each its own, writable.
    fs.writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 1`,
        ...(auth
          ? [
              `sentinel auth-user ${name} ${auth.user}`,
              `sentinel auth-pass ${name} ${auth.password}`,
            ]
          : []),
        ...(sentinelPassword
          ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]
          : []),
        '',
      ].join('\n'),
    );
    children.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
  }
  const probes = ports.map((port) =>
    quiet(
      new Redis({
        port,
        host: '127.0.0.1',
        maxRetriesPerRequest: 1,
        ...(sentinelPassword && { password: sentinelPassword }),
      }),
    ),
  );
  const self: SentinelSetup = {
    name,
    master,
    replica,
    sentinels: ports.map((p) => `127.0.0.1:${p}`).join(','),
    async masterPort() {
      const [, port] = (await probes[0]!.call('SENTINEL', 'get-master-addr-by-name', name)) as [
        string,
        string,
      ];
      return Number(port);
    },
    async stop() {
      for (const p of probes) p.disconnect();
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all([master.stop(), replica.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const onReplica = quiet(new Redis(replica.url, { maxRetriesPerRequest: 1 }));
    await until(
      'the replica in sync',
      async () => /master_link_status:up/.test(await onReplica.info('replication')),
      20_000,
      100,
    );
    onReplica.disconnect();
    // Every sentinel knows the replica and the two other sentinels (hello messages, every 2 s).
    await until(
      'sentinels that can vote a failover',
      async () => {
        for (const p of probes) {
          const replicas = (await p.call('SENTINEL', 'replicas', name)) as unknown[];
          const others = (await p.call('SENTINEL', 'sentinels', name)) as unknown[];
          if (replicas.length < 1 || others.length < 2) return false;
        }
        return true;
      },
      30_000,
      200,
    );
  } catch (err) {
    await self.stop();
    throw err;
  }
  return self;
}

/** Wait until the replica has every write the master has (async replication caught up). */
export async function replicaCaughtUp(setup: SentinelSetup): Promise<void> {
  const onMaster = quiet(new Redis(setup.master.url, { maxRetriesPerRequest: 1 }));
  const onReplica = quiet(new Redis(setup.replica.url, { maxRetriesPerRequest: 1 }));
  const offset = (info: string, field: string) =>
    Number(new RegExp(`${field}:(\\d+)`).exec(info)?.[1] ?? -1);
  try {
    await until('replica caught up', async () => {
      const m = offset(await onMaster.info('replication'), 'master_repl_offset');
      const r = offset(await onReplica.info('replication'), 'slave_repl_offset');
      return r >= m;
    });
  } finally {
    onMaster.disconnect();
    onReplica.disconnect();
  }
}
