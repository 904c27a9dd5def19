/**
 * A Redis Cluster of private `redis-server --cluster-enabled yes` children on
 * loopback, joined with `redis-cli --cluster create`, and a client on it.
 */
import { spawnSync } from 'node:child_process';

import { Cluster } from 'ioredis';

import { until } from './redis.js';
import { type PrivateRedis, privateRedis } from './redis-server.js';

export interface TestCluster {
  nodes: PrivateRedis[];
  cluster: Cluster;
  stop(): Promise<void>;
}

/** `count` nodes, `replicas` replicas per master (so count / (replicas + 1) masters). */
export async function startCluster(count: number, replicas: number): Promise<TestCluster> {
  const nodes: PrivateRedis[] = [];
  const stop = async () => {
    cluster?.disconnect();
    await Promise.all(nodes.map((n) => n.stop()));
  };
  let cluster: Cluster | undefined;
  try {
    for (let i = 0; i < count; i++) {
      const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'];
      nodes.push(await privateRedis([...args, '--cluster-node-timeout', '1000']));
    }
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    );
    if (create.status !== 0) throw new Error(`cluster create: ${create.stdout}${create.stderr}`);
    const client = new Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }]);
    cluster = client;
    client.on('error', () => undefined);
    await until('cluster ok', async () => /cluster_state:ok/.test(await client.cluster('INFO')));
    return { nodes, cluster: client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
