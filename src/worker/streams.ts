/**
 * Stream-level Redis operations of the worker: creating the group,
 * XREADGROUP and parsing Buffer replies into Deliveries.
 */
import type { Redis } from 'ioredis';

import type { Delivery } from './answer.js';

/** Create the group on each stream (MKSTREAM) if missing. Starts at 0 so entries added before the first worker are served. */
export async function ensureGroups(
  redis: Redis,
  streams: readonly string[],
  group: string,
): Promise<void> {
  for (const stream of streams) {
    try {
      await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
  }
}

type RawEntry = [Buffer, Buffer[] | null];

export function toDeliveries(
  stream: string,
  model: string,
  entries: RawEntry[],
  deliveries: (id: string) => number,
): Delivery[] {
  const now = Date.now();
  const out: Delivery[] = [];
  for (const [idBuf, fields] of entries) {
    // A null body means the entry was deleted (trimmed) while pending: nothing to answer.
    if (!fields) continue;
    const id = idBuf.toString();
    out.push({ stream, model, id, fields, deliveries: deliveries(id), receivedAt: now });
  }
  return out;
}

export async function readGroup(
  redis: Redis,
  opts: {
    group: string;
    consumer: string;
    count: number;
    /** Wait this long for entries; undefined = do not block. */
    blockMs?: number;
    streams: readonly string[];
    modelOf: (stream: string) => string;
  },
): Promise<Delivery[]> {
  const reply = (await redis.callBuffer(
    'XREADGROUP',
    'GROUP',
    opts.group,
    opts.consumer,
    'COUNT',
    String(opts.count),
    ...(opts.blockMs === undefined ? [] : ['BLOCK', String(opts.blockMs)]),
    'STREAMS',
    ...opts.streams,
    ...opts.streams.map(() => '>'),
  )) as Array<[Buffer, RawEntry[]]> | null;
  if (!reply) return [];
  return reply.flatMap(([streamBuf, entries]) => {
    const stream = streamBuf.toString();
    return toDeliveries(stream, opts.modelOf(stream), entries, () => 1);
  });
}

/** Entry id -> epoch ms it was added (its id's time part). */
export function entryTimeMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}
