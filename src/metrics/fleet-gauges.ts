/**
 * Gauges of fleet state that lives in Redis, not in this process: per model
 * and lane (length, lag, pending, oldest pending, consumers, entries read;
 * the bulk lane summed over the plain bulk stream and every per-source one),
 * per allow-listed source's bulk stream, per DLQ, and per allow-listed
 * source (the progress counters). Read on scrape in two pipelined round
 * trips (the models' bulk-source registries, then everything) and cached
 * for `cacheMs`, and concurrent scrapes share the read in flight, so any
 * number of scrapers costs at most one read per `cacheMs`. A failed or slow
 * read drops these series and sets streambed_fleet_stats_up to 0 rather
 * than serving stale numbers.
 */
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';

import { type Keys, type Lane, PLAIN_BULK_MEMBER } from '../keys.js';
import { type EvictionRisk, evictionRisks } from '../redis/eviction.js';
import { LANES } from '../status/gather.js';
import { type StreamCounts, streamCounts, sumCounts } from '../status/model-status.js';
import {
  idTimeMs,
  type ProgressRecord,
  queueLength,
  queueMembers,
  queueProgress,
  queueServerTime,
  queueStreamRead,
  type StreamRead,
} from '../status/redis-reads.js';

/** One stream, or a lane's streams summed. */
export interface StreamGauges extends StreamCounts {
  /** Of the streams' oldest pending entries: the oldest added and the longest idle (ms); null without the group. */
  oldestAgeMs: number | null;
  oldestIdleMs: number | null;
  /** Consumers of the group, the most on any one of the streams; null without the group. */
  consumers: number | null;
}

export interface FleetSnapshot {
  atMs: number;
  streams: Array<{ model: string; lane: Lane } & StreamGauges>;
  /** Per-source bulk streams of allow-listed sources. */
  bulkSources: Array<{ model: string; source: string } & StreamGauges>;
  dlq: Array<{ model: string; length: number }>;
  sources: Array<{ source: string; progress: ProgressRecord }>;
  /** Nodes that may delete the fleet's keys when full (../redis/eviction.ts). */
  evictionRisks: EvictionRisk[];
}

export interface FleetReaderOptions {
  keys: Keys;
  models: () => readonly string[];
  /** Allow-listed sources (METRICS_SOURCES): the only ones with a `source` label. */
  sources: readonly string[];
  cacheMs: number;
  timeoutMs: number;
  onError?: (err: Error) => void;
}

/** One pipelined read of everything the fleet gauges show, cached and shared. */
export class FleetReader {
  private cached: { at: number; value: Promise<FleetSnapshot | undefined> } | undefined;
  private turn: Promise<FleetSnapshot | undefined> | undefined;

  constructor(
    private readonly redis: () => Promise<Redis>,
    private readonly o: FleetReaderOptions,
  ) {}

  /**
   * The current snapshot. Every gauge of one scrape asks in the same
   * synchronous turn, so they all get the same snapshot even at the cache's edge.
   */
  read(): Promise<FleetSnapshot | undefined> {
    if (this.turn) return this.turn;
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= this.o.cacheMs) {
      this.cached = {
        at: now,
        value: this.fetch().catch((err: unknown) => {
          this.o.onError?.(err as Error);
          return undefined;
        }),
      };
    }
    this.turn = this.cached.value;
    queueMicrotask(() => (this.turn = undefined));
    return this.turn;
  }

  private async fetch(): Promise<FleetSnapshot> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('fleet read timed out')), this.o.timeoutMs);
    });
    try {
      return await Promise.race([this.fetchNow(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetchNow(): Promise<FleetSnapshot> {
    const { keys } = this.o;
    const redis = await this.redis();
    const models = this.o.models();
    // First the registries: the bulk lane is every stream in them, read in the same pass.
    const r = redis.pipeline();
    const registries = models.map((m) => queueMembers(r, keys.bulkSources(m)));
    const registered = await r
      .exec()
      .then((replies) => registries.map((read) => read(replies ?? [])));

    const allowed = new Set(this.o.sources);
    const p = redis.pipeline();
    const time = queueServerTime(p);
    const read = (stream: string) => queueStreamRead(p, stream, keys.group, 1);
    const plans = models.map((model, i) => {
      const sources = (registered[i] ?? []).filter((s) => s !== PLAIN_BULK_MEMBER).sort();
      return {
        model,
        interactive: read(keys.request(model)),
        bulk: [PLAIN_BULK_MEMBER, ...sources].map((source) => ({
          source,
          read: read(keys.bulkSource(model, source)),
        })),
      };
    });
    const dlq = models.map((model) => ({ model, read: queueLength(p, keys.dlq(model)) }));
    const sources = this.o.sources.map((source) => ({
      source,
      read: queueProgress(p, keys.progress(source)),
    }));
    const [replies, risks] = await Promise.all([
      p.exec().then((r) => r ?? []),
      evictionRisks(redis),
    ]);
    const atMs = time(replies);
    return {
      atMs,
      evictionRisks: risks,
      streams: plans.flatMap((m) => {
        const bulk = m.bulk.map((b) => b.read(replies));
        return LANES.map((lane) => ({
          model: m.model,
          lane,
          ...streamGauges(lane === 'bulk' ? bulk : [m.interactive(replies)], atMs),
        }));
      }),
      bulkSources: plans.flatMap((m) =>
        m.bulk
          .filter((b) => allowed.has(b.source))
          .map((b) => ({
            model: m.model,
            source: b.source,
            ...streamGauges([b.read(replies)], atMs),
          })),
      ),
      dlq: dlq.map((d) => ({ model: d.model, length: d.read(replies) })),
      sources: sources.map((s) => ({ source: s.source, progress: s.read(replies) })),
    };
  }
}

/** Gauge values of streams summed (lag, pending, ...) or at their worst (oldest pending). */
export function streamGauges(reads: readonly StreamRead[], atMs: number): StreamGauges {
  const grouped = reads.filter((r) => r.group !== null);
  const oldest = grouped.flatMap((r) => (r.pending[0] ? [r.pending[0]] : []));
  const none = grouped.length === 0;
  return {
    ...sumCounts(reads.map((read) => streamCounts({ read }))),
    oldestAgeMs: none ? null : Math.max(0, ...oldest.map((e) => atMs - idTimeMs(e.id))),
    oldestIdleMs: none ? null : Math.max(0, ...oldest.map((e) => e.idleMs)),
    consumers: none ? null : Math.max(...grouped.map((r) => r.group?.consumers ?? 0)),
  };
}

/** Register the fleet gauges on `registry`, each filled from the reader's shared snapshot on scrape. */
export function registerFleetGauges(registry: Registry, reader: FleetReader): void {
  const byStream = ['model', 'lane'] as const;
  type Fill<L extends string> = (g: Gauge<L>, snap: FleetSnapshot) => void;
  function gauge<L extends string>(
    name: string,
    help: string,
    labels: readonly L[],
    fill: Fill<L>,
  ) {
    new Gauge<L>({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      async collect() {
        const snap = await reader.read();
        this.reset();
        if (snap) fill(this, snap);
      },
    });
  }
  type Value = (s: StreamGauges) => number | null;
  /** A per-lane gauge, skipped where the value is unknown (e.g. no group on any stream). */
  function streamGauge(name: string, help: string, value: Value) {
    gauge(name, help, byStream, (g, snap) => {
      for (const s of snap.streams) {
        const v = value(s);
        if (v !== null) g.set({ model: s.model, lane: s.lane }, v);
      }
    });
  }
  /** The same per allow-listed source's bulk stream (METRICS_SOURCES: bounded label values). */
  function sourceStreamGauge(name: string, help: string, value: Value) {
    gauge(name, help, ['model', 'source'], (g, snap) => {
      for (const s of snap.bulkSources) {
        const v = value(s);
        if (v !== null) g.set({ model: s.model, source: s.source }, v);
      }
    });
  }
  const lag: Value = (s) => s.lag;
  const pending: Value = (s) => (s.groupExists ? s.pending : null);
  const oldestIdle: Value = (s) => (s.oldestIdleMs === null ? null : s.oldestIdleMs / 1000);

  gauge(
    'streambed_redis_may_evict',
    "1 per Redis node (each master of a Cluster) whose maxmemory-policy deletes keys when full (maxmemory set, not noeviction): it would lose the fleet's entries or answers.",
    ['node', 'policy'],
    (g, snap) => {
      for (const r of snap.evictionRisks) g.set({ node: r.node, policy: r.policy }, 1);
    },
  );
  new Gauge({
    name: 'streambed_fleet_stats_up',
    help: '1 when the last on-scrape read of stream, DLQ and progress state from Redis succeeded.',
    registers: [registry],
    async collect() {
      this.set((await reader.read()) ? 1 : 0);
    },
  });
  streamGauge(
    'streambed_stream_length',
    'Entries in the request streams of the lane (XLEN; bulk: summed over every bulk stream).',
    (s) => (s.exists ? s.length : null),
  );
  streamGauge(
    'streambed_stream_lag',
    'Entries not yet delivered to the consumer group (XINFO GROUPS lag; bulk: summed over every bulk stream; absent when Redis cannot tell).',
    lag,
  );
  streamGauge(
    'streambed_stream_pending',
    'Entries delivered to a consumer and not yet acknowledged (XINFO GROUPS pending; bulk: summed).',
    pending,
  );
  streamGauge(
    'streambed_stream_oldest_pending_age_seconds',
    'Age (since it was added) of the oldest pending entry of the lane; 0 when nothing is pending.',
    (s) => (s.oldestAgeMs === null ? null : s.oldestAgeMs / 1000),
  );
  streamGauge(
    'streambed_stream_oldest_pending_idle_seconds',
    'Time since the oldest pending entry was last delivered (XPENDING idle; bulk: the longest over its streams); 0 when nothing is pending.',
    oldestIdle,
  );
  streamGauge(
    'streambed_stream_consumers',
    'Consumers registered in the group (live or not; bulk: the most on any bulk stream).',
    (s) => s.consumers,
  );
  streamGauge(
    'streambed_stream_entries_read',
    'Entries the group has read from the lane (XINFO GROUPS entries-read; bulk: summed); rate() gives deliveries/s.',
    (s) => s.entriesRead,
  );
  sourceStreamGauge(
    'streambed_bulk_source_lag',
    "Entries not yet delivered on an allow-listed source's bulk stream (METRICS_SOURCES).",
    lag,
  );
  sourceStreamGauge(
    'streambed_bulk_source_pending',
    "Entries pending on an allow-listed source's bulk stream (METRICS_SOURCES).",
    pending,
  );
  sourceStreamGauge(
    'streambed_bulk_source_oldest_pending_idle_seconds',
    "Time since the oldest pending entry of an allow-listed source's bulk stream was last delivered; 0 when nothing is pending.",
    oldestIdle,
  );
  gauge('streambed_dlq_length', 'Records in the model DLQ stream.', ['model'], (g, snap) => {
    for (const d of snap.dlq) g.set({ model: d.model }, d.length);
  });
  gauge(
    'streambed_source_entries',
    'Progress counters of an allow-listed source (METRICS_SOURCES), fleet-wide: submitted, done, failed (not replayed since), deduped, replayed (DLQ replays).',
    ['source', 'state'],
    (g, snap) => {
      for (const s of snap.sources)
        for (const state of ['submitted', 'done', 'failed', 'deduped', 'replayed'] as const)
          g.set({ source: s.source, state }, s.progress[state]);
    },
  );
  gauge(
    'streambed_source_last_done_timestamp_seconds',
    'When an allow-listed source last had an entry finished (epoch seconds).',
    ['source'],
    (g, snap) => {
      for (const s of snap.sources)
        if (s.progress.lastDoneMs !== null)
          g.set({ source: s.source }, s.progress.lastDoneMs / 1000);
    },
  );
}
