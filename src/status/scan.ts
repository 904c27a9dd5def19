/** SCAN by pattern and type: how status finds streams, progress hashes and jobs. */
import type { Redis } from 'ioredis';

export async function scanKeys(redis: Redis, match: string, type: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000, 'TYPE', type);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}
