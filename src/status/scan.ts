/** SCAN by pattern and type: how status and the DLQ find streams, progress hashes and jobs. */
import type { Redis } from 'ioredis';

import { eachNode } from '../redis/connect.js';

/** Every key matching, on every node (a Cluster's masters, or the one server). */
export async function scanKeys(redis: Redis, match: string, type: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of eachNode(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000, 'TYPE', type);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}
