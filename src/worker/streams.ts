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
      if (String((err as Error).message).startsWith('BUSYGROUP')) continue;
      // Redis at maxmemory refuses XGROUP CREATE even when the group exists: then all is well.
      if (!(await groupExists(redis, stream, group))) throw err;
    }
  }
}

async function groupExists(redis: Redis, stream: string, group: string): Promise<boolean> {
  const groups = (await redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[][];
  return groups.some((g) => {
    const at = g.indexOf('name');
    return at >= 0 && String(g[at + 1]) === group;
  });
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

/**
 * XREADGROUP of at most `count` entries in all. Its COUNT is per stream, so
 * with several streams (one per model) each gets `count / streams` and, when
 * that is under one, only `count` of them are read, starting at `turn`
 * (callers rotate it so every stream gets its turn).
 */
export async function readGroup(
  redis: Redis,
  opts: {
    group: string;
    consumer: string;
    /** Most entries the read may return, over every stream. */
    count: number;
    turn?: number;
    /** Wait this long for entries; undefined = do not block. */
    blockMs?: number;
    streams: readonly string[];
    modelOf: (stream: string) => string;
  },
): Promise<Delivery[]> {
  const n = opts.streams.length;
  const k = Math.max(1, Math.min(n, opts.count));
  const from = (opts.turn ?? 0) % n;
  const streams = Array.from({ length: k }, (_, i) => opts.streams[(from + i) % n] as string);
  const reply = (await redis.callBuffer(
    'XREADGROUP',
    'GROUP',
    opts.group,
    opts.consumer,
    'COUNT',
    String(Math.max(1, Math.floor(opts.count / k))),
    ...(opts.blockMs === undefined ? [] : ['BLOCK', String(opts.blockMs)]),
    'STREAMS',
    ...streams,
    ...streams.map(() => '>'),
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
