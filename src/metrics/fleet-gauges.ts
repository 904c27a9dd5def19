/**
 * Gauges of fleet state that lives in Redis, not in this process: per stream
 * and group (length, lag, pending, oldest pending, consumers, entries read),
 * per DLQ, and per allow-listed source (the progress counters). Read on
 * scrape in ONE pipelined round trip and cached for `cacheMs`, and concurrent
 * scrapes share the read in flight, so any number of scrapers costs at most
 * one round trip per `cacheMs`. A failed or slow read drops these series and
 * sets streambed_fleet_stats_up to 0 rather than serving stale numbers.
 */
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';

import type { Keys, Lane } from '../keys.js';
import { LANES } from '../status/gather.js';
import {
  idTimeMs,
  type ProgressRecord,
  queueLength,
  queueProgress,
  queueServerTime,
  queueStreamRead,
  type StreamRead,
} from '../status/redis-reads.js';

export interface FleetSnapshot {
  atMs: number;
  streams: Array<{ model: string; lane: Lane; read: StreamRead }>;
  dlq: Array<{ model: string; length: number }>;
  sources: Array<{ source: string; progress: ProgressRecord }>;
}

export interface FleetReaderOptions {
  keys: Keys;
  models: () => readonly string[];
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
    const p = redis.pipeline();
    const time = queueServerTime(p);
    const models = this.o.models();
    const streams = models.flatMap((model) =>
      LANES.map((lane) => ({
        model,
        lane,
        read: queueStreamRead(p, keys.request(model, lane), keys.group, 1),
      })),
    );
    const dlq = models.map((model) => ({ model, read: queueLength(p, keys.dlq(model)) }));
    const sources = this.o.sources.map((source) => ({
      source,
      read: queueProgress(p, keys.progress(source)),
    }));
    const replies = (await p.exec()) ?? [];
    return {
      atMs: time(replies),
      streams: streams.map((s) => ({ model: s.model, lane: s.lane, read: s.read(replies) })),
      dlq: dlq.map((d) => ({ model: d.model, length: d.read(replies) })),
      sources: sources.map((s) => ({ source: s.source, progress: s.read(replies) })),
    };
  }
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
  /** A per-stream gauge from the group's row, skipped for streams without the group. */
  function streamGauge(
    name: string,
    help: string,
    value: (s: FleetSnapshot['streams'][number], atMs: number) => number | null,
  ) {
    gauge(name, help, byStream, (g, snap) => {
      for (const s of snap.streams) {
        const v = value(s, snap.atMs);
        if (v !== null) g.set({ model: s.model, lane: s.lane }, v);
      }
    });
  }

  new Gauge({
    name: 'streambed_fleet_stats_up',
    help: '1 when the last on-scrape read of stream, DLQ and progress state from Redis succeeded.',
    registers: [registry],
    async collect() {
      this.set((await reader.read()) ? 1 : 0);
    },
  });
  streamGauge('streambed_stream_length', 'Entries in the request stream (XLEN).', (s) =>
    s.read.exists ? s.read.length : null,
  );
  streamGauge(
    'streambed_stream_lag',
    'Entries not yet delivered to the consumer group (XINFO GROUPS lag; absent when Redis cannot tell).',
    (s) => s.read.group?.lag ?? null,
  );
  streamGauge(
    'streambed_stream_pending',
    'Entries delivered to a consumer and not yet acknowledged (XINFO GROUPS pending).',
    (s) => s.read.group?.pending ?? null,
  );
  streamGauge(
    'streambed_stream_oldest_pending_age_seconds',
    'Age (since it was added) of the oldest pending entry; 0 when nothing is pending.',
    (s, atMs) => {
      if (!s.read.group) return null;
      const oldest = s.read.pending[0];
      return oldest ? Math.max(0, atMs - idTimeMs(oldest.id)) / 1000 : 0;
    },
  );
  streamGauge(
    'streambed_stream_oldest_pending_idle_seconds',
    'Time since the oldest pending entry was last delivered (XPENDING idle); 0 when nothing is pending.',
    (s) => (s.read.group ? (s.read.pending[0]?.idleMs ?? 0) / 1000 : null),
  );
  streamGauge(
    'streambed_stream_consumers',
    'Consumers registered in the group on this stream (live or not).',
    (s) => s.read.group?.consumers ?? null,
  );
  streamGauge(
    'streambed_stream_entries_read',
    'Entries the group has read from this stream (XINFO GROUPS entries-read); rate() gives deliveries/s.',
    (s) => s.read.group?.entriesRead ?? null,
  );
  gauge('streambed_dlq_length', 'Records in the model DLQ stream.', ['model'], (g, snap) => {
    for (const d of snap.dlq) g.set({ model: d.model }, d.length);
  });
  gauge(
    'streambed_source_entries',
    'Progress counters of an allow-listed source (METRICS_SOURCES), fleet-wide: submitted, done, failed, deduped.',
    ['source', 'state'],
    (g, snap) => {
      for (const s of snap.sources)
        for (const state of ['submitted', 'done', 'failed', 'deduped'] as const)
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
