/**
 * Whether Redis may delete the fleet's keys when it is full. Only
 * `maxmemory-policy noeviction` keeps the fleet whole (Redis then refuses
 * writes, which every part waits out). `allkeys-*` evicts request streams,
 * entries lost before any worker read them; `volatile-*` evicts keys with a
 * TTL: reply streams holding answers not yet read, backfill answers. An
 * eviction cannot be seen afterwards, so the worker says so at start and
 * `status --check` reports it (breach `eviction`). Managed Redis often
 * defaults to `volatile-lru`.
 */
import type { Redis } from 'ioredis';

import { eachNode } from './connect.js';

export interface EvictionRisk {
  /** `host:port` of the node, or `redis` for a single server. */
  node: string;
  policy: string;
  maxmemoryBytes: number;
}

/** The nodes (a Cluster's masters, or the one server) with maxmemory set and a policy that deletes keys. */
export async function evictionRisks(redis: Redis): Promise<EvictionRisk[]> {
  const nodes = eachNode(redis);
  const infos = await Promise.all(nodes.map((n) => n.info('memory')));
  return infos.flatMap((info, i) => {
    const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'noeviction';
    const maxmemoryBytes = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0);
    if (policy === 'noeviction' || maxmemoryBytes === 0) return [];
    const n = nodes[i] as Redis;
    const node = nodes.length > 1 ? `${n.options.host}:${n.options.port}` : 'redis';
    return [{ node, policy, maxmemoryBytes }];
  });
}

export function evictionMessage(r: EvictionRisk): string {
  const what = r.policy.startsWith('allkeys')
    ? 'request streams (entries lost unread)'
    : 'keys with a TTL (reply streams with unread answers, backfill answers)';
  return `${r.node}: maxmemory-policy ${r.policy} with maxmemory ${r.maxmemoryBytes} bytes: when full, Redis deletes ${what}; set noeviction`;
}
