/**
 * Results as a producer reads them: every entry of a reply stream, decoded,
 * and a wait until a stream holds a given number of them.
 */
import type { Redis } from 'ioredis';

import { decodeResult } from '../../src/codec/result.js';
import type { EmbedResult } from '../../src/types.js';
import { until } from './redis.js';

export async function readResults(redis: Redis, stream: string): Promise<EmbedResult[]> {
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, fields]) => decodeResult(id.toString(), fields));
}

/** The stream's results by page id, once it holds at least `count` (fails after `timeoutMs`). */
export function resultsById(
  redis: Redis,
  stream: string,
  count: number,
  timeoutMs = 30_000,
): Promise<Map<string, EmbedResult>> {
  return until(
    `${count} results on ${stream}`,
    async () => {
      const all = await readResults(redis, stream);
      return all.length >= count ? new Map(all.map((r) => [r.id, r])) : undefined;
    },
    timeoutMs,
  );
}
