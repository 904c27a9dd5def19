/**
 * One sample of the fleet's state for `streambed status`: discovers model
 * streams and progress hashes (SCAN), then reads every stream, group,
 * consumer list, DLQ and progress hash in one pipelined round trip, plus a
 * second one for each busy consumer's oldest pending entry.
 */
import type { Redis } from 'ioredis';

import type { Keys, Lane } from '../keys.js';
import { MODEL_NAME } from '../models/table.js';
import {
  type ConsumerRecord,
  type PendingEntry,
  type ProgressRecord,
  queueConsumers,
  queueLength,
  queueOldestPending,
  queueProgress,
  queueServerTime,
  queueStreamRead,
  type StreamRead,
} from './redis-reads.js';

export const LANES: readonly Lane[] = ['interactive', 'bulk'];

export interface ConsumerSample extends ConsumerRecord {
  oldest: PendingEntry | null;
}

export interface LaneSample {
  lane: Lane;
  stream: string;
  read: StreamRead;
  consumers: ConsumerSample[];
  /** An entry idle at least the pending-age threshold (exact check), when one was asked for. */
  overIdle: PendingEntry | null;
}

export interface ModelSample {
  model: string;
  dlq: string;
  dlqLength: number;
  lanes: LaneSample[];
}

export interface Sample {
  /** Redis server time of the read, epoch ms. */
  atMs: number;
  models: ModelSample[];
  sources: Array<{ source: string; progress: ProgressRecord }>;
}

export interface GatherOptions {
  keys: Keys;
  /** Models to read; undefined = every model with a request stream. */
  models?: readonly string[];
  /** Sources to read; undefined = every source with a progress hash. */
  sources?: readonly string[];
  /** How many of the oldest pending entries to list per stream. */
  pendingSample: number;
  /** Find a pending entry idle at least this long (for --check), or skip. */
  minIdleMs?: number;
}

export async function gatherSample(redis: Redis, o: GatherOptions): Promise<Sample> {
  const [models, sources] = await Promise.all([
    o.models ? [...o.models] : discoverModels(redis, o.keys),
    o.sources ? [...o.sources] : discoverSources(redis, o.keys),
  ]);
  const p = redis.pipeline();
  const time = queueServerTime(p);
  const plans = models.map((model) => ({
    model,
    dlq: queueLength(p, o.keys.dlq(model)),
    lanes: LANES.map((lane) => {
      const stream = o.keys.request(model, lane);
      return {
        lane,
        stream,
        read: queueStreamRead(p, stream, o.keys.group, o.pendingSample),
        consumers: queueConsumers(p, stream, o.keys.group),
        overIdle:
          o.minIdleMs === undefined
            ? undefined
            : queueOldestPending(p, stream, o.keys.group, { minIdleMs: o.minIdleMs }),
      };
    }),
  }));
  const progress = sources.map((source) => ({
    source,
    read: queueProgress(p, o.keys.progress(source)),
  }));
  const replies = (await p.exec()) ?? [];

  const sample: Sample = {
    atMs: time(replies),
    models: plans.map((m) => ({
      model: m.model,
      dlq: o.keys.dlq(m.model),
      dlqLength: m.dlq(replies),
      lanes: m.lanes.map((l) => ({
        lane: l.lane,
        stream: l.stream,
        read: l.read(replies),
        consumers: l.consumers(replies).map((c) => ({ ...c, oldest: null })),
        overIdle: l.overIdle?.(replies) ?? null,
      })),
    })),
    sources: progress.map((s) => ({ source: s.source, progress: s.read(replies) })),
  };
  await readOldestPerConsumer(redis, o.keys.group, sample);
  return sample;
}

/** Second round trip: the oldest pending entry of every consumer that has any. */
async function readOldestPerConsumer(redis: Redis, group: string, sample: Sample): Promise<void> {
  const busy = sample.models.flatMap((m) =>
    m.lanes.flatMap((l) => l.consumers.filter((c) => c.pending > 0).map((c) => ({ l, c }))),
  );
  if (busy.length === 0) return;
  const p = redis.pipeline();
  const reads = busy.map(({ l, c }) => ({
    c,
    read: queueOldestPending(p, l.stream, group, { consumer: c.name }),
  }));
  const replies = (await p.exec()) ?? [];
  for (const { c, read } of reads) c.oldest = read(replies);
}

/** Model names that have a request stream (either lane), by SCAN. */
export async function discoverModels(redis: Redis, keys: Keys): Promise<string[]> {
  const head = keys.request('');
  const bulkTail = keys.request('', 'bulk').slice(head.length);
  const found = await scanKeys(redis, keys.request('*'), 'stream');
  const names = found.map((key) => {
    const rest = key.slice(head.length);
    return rest.endsWith(bulkTail) ? rest.slice(0, -bulkTail.length) : rest;
  });
  // Anything under the prefix that is not a valid model name is not ours.
  return [...new Set(names)].filter((n) => MODEL_NAME.test(n)).sort();
}

/** Sources that have a progress hash, by SCAN. */
export async function discoverSources(redis: Redis, keys: Keys): Promise<string[]> {
  const head = keys.progress('');
  const found = await scanKeys(redis, keys.progress('*'), 'hash');
  return [...new Set(found.map((k) => k.slice(head.length)))].filter((s) => s !== '_').sort();
}

async function scanKeys(redis: Redis, match: string, type: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000, 'TYPE', type);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}
