/**
 * A model's part of the status report: each of its streams as XINFO and
 * XPENDING have it, each lane summed over its streams (the bulk lane is the
 * plain bulk stream plus every per-source one), and its consumers merged
 * across streams with a liveness state.
 */
import type { Lane } from '../keys.js';
import { LANES, type ModelSample, type StreamSample } from './gather.js';
import { idTimeMs, type PendingEntry, type ProviderSample } from './redis-reads.js';

export interface PendingStatus {
  id: string;
  consumer: string;
  /** Since it was last delivered (XPENDING idle). */
  idleMs: number;
  /** Since it was added (its id's time). */
  ageMs: number;
  deliveries: number;
}

/**
 * live: seen within liveMs. dead: not seen, and a live consumer would have
 * been (Redis >= 7.2 counts every read attempt in `idle`; older servers only
 * reads that got entries, so there a consumer is dead only while the model
 * has undelivered entries). quiet: not seen, nothing to read, Redis < 7.2.
 */
export type ConsumerState = 'live' | 'dead' | 'quiet';

export interface ConsumerStatus {
  name: string;
  state: ConsumerState;
  pending: number;
  /** XINFO CONSUMERS idle (the least over the streams concerned). */
  idleMs: number;
  /** XINFO CONSUMERS inactive (Redis >= 7.2; the least over the streams), else null. */
  inactiveMs: number | null;
  oldestPending: PendingStatus | null;
}

/** Counts of one stream, or of several summed. */
export interface StreamCounts {
  exists: boolean;
  length: number;
  groupExists: boolean;
  /** Entries not yet delivered to the group (a stream without the group: all of it); null when Redis cannot tell. */
  lag: number | null;
  pending: number;
  entriesRead: number | null;
  /** Entries acknowledged per second over rateWindowMs; null with one sample. */
  ratePerSec: number | null;
}

export interface StreamStatus extends StreamCounts {
  lane: Lane;
  /** Bulk: the stream's source (`*` = the plain bulk stream); interactive: null. */
  source: string | null;
  stream: string;
  consumers: ConsumerStatus[];
  oldestPending: PendingStatus | null;
  /** The oldest pending entries, at most --pending-sample of them. */
  pendingSample: PendingStatus[];
}

export interface LaneStatus extends StreamCounts {
  lane: Lane;
  /** The lane's own stream (interactive, or the plain bulk stream). */
  stream: string;
  /** Streams summed (bulk: the plain one plus every per-source one). */
  streamCount: number;
  consumers: ConsumerStatus[];
  /** Of the lane's streams' oldest pending entries, the one idle longest. */
  oldestPending: PendingStatus | null;
  pendingSample: PendingStatus[];
}

export interface ModelStatus {
  model: string;
  dlq: string;
  dlqLength: number;
  /** A remote model's fleet state (cooldown end, tokens spent today with a budget); null when it has none. */
  provider: ProviderSample | null;
  /** Entries waiting on any of its streams: lag (or, unknown, length) plus pending. */
  backlog: number;
  /** Consumers seen within liveMs on any of its streams. */
  liveConsumers: number;
  /** Every consumer of the group on any of its streams, merged by name. */
  consumers: ConsumerStatus[];
  /** `interactive` then `bulk`, each summed over its streams. */
  lanes: LaneStatus[];
  /** Every stream: interactive, plain bulk, then per-source bulk by source. */
  streams: StreamStatus[];
}

/** Rate of acknowledged entries of a stream from the sample before (key: stream). */
export type RateOf = (s: StreamSample) => number | null;

export interface ModelStatusOptions {
  atMs: number;
  liveMs: number;
  /** Most pending entries listed per lane. */
  pendingSample: number;
  rateOf: RateOf;
}

export function modelStatus(m: ModelSample, o: ModelStatusOptions): ModelStatus {
  const { atMs, liveMs, rateOf } = o;
  const counts = m.streams.map(streamCounts);
  const lagging = counts.some((c) => (c.lag === null ? c.length > 0 : c.lag > 0));
  const newServer = m.streams.some((s) => s.consumers.some((c) => c.inactiveMs !== null));
  const stateOf = (idleMs: number): ConsumerState =>
    idleMs < liveMs ? 'live' : newServer || lagging ? 'dead' : 'quiet';
  const pend = (e: PendingEntry | null): PendingStatus | null =>
    e && {
      id: e.id,
      consumer: e.consumer,
      idleMs: e.idleMs,
      ageMs: Math.max(0, atMs - idTimeMs(e.id)),
      deliveries: e.deliveries,
    };
  // A consumer's state is the model's view of it (its least idle over all the model's streams).
  const states = new Map(mergeConsumers(m.streams, pend).map((c) => [c.name, stateOf(c.idleMs)]));
  const consumersOf = (list: readonly StreamSample[]): ConsumerStatus[] =>
    mergeConsumers(list, pend).map(({ name, ...c }) => ({
      name,
      state: states.get(name) ?? 'dead',
      ...c,
    }));
  const modelConsumers = consumersOf(m.streams);
  const streams = m.streams.map((s, i): StreamStatus => ({
    lane: s.lane,
    source: s.source,
    stream: s.stream,
    ...(counts[i] as StreamCounts),
    ratePerSec: rateOf(s),
    consumers: consumersOf([s]),
    oldestPending: pend(s.read.pending[0] ?? null),
    pendingSample: s.read.pending.map((e) => pend(e) as PendingStatus),
  }));
  const lanes = LANES.filter((lane) => streams.some((s) => s.lane === lane)).map(
    (lane): LaneStatus => {
      const own = streams.filter((s) => s.lane === lane);
      const samples = m.streams.filter((s) => s.lane === lane);
      return {
        lane,
        stream: (own[0] as StreamStatus).stream,
        streamCount: own.length,
        ...sumCounts(own),
        consumers: consumersOf(samples),
        oldestPending: longestIdle(own.map((s) => s.oldestPending)),
        pendingSample: own
          .flatMap((s) => s.pendingSample)
          .sort((a, b) => b.ageMs - a.ageMs)
          .slice(0, o.pendingSample),
      };
    },
  );
  return {
    model: m.model,
    dlq: m.dlq,
    dlqLength: m.dlqLength,
    provider: m.provider,
    backlog: counts.reduce((n, c) => n + (c.lag ?? c.length) + c.pending, 0),
    liveConsumers: modelConsumers.filter((c) => c.state === 'live').length,
    consumers: modelConsumers,
    lanes,
    streams,
  };
}

/** A stream's counts as XINFO GROUPS has them; without the group, every entry is waiting. */
export function streamCounts(s: Pick<StreamSample, 'read'>): StreamCounts {
  const g = s.read.group;
  return {
    exists: s.read.exists,
    length: s.read.length,
    groupExists: g !== null,
    lag: g ? g.lag : s.read.length,
    pending: g ? g.pending : 0,
    entriesRead: g ? g.entriesRead : null,
    ratePerSec: null,
  };
}

/** Counts summed over streams; an unknown lag or rate makes the sum unknown. */
export function sumCounts(list: readonly StreamCounts[]): StreamCounts {
  const sum = (f: (c: StreamCounts) => number | null) =>
    list.reduce<number | null>((n, c) => {
      const v = f(c);
      return n === null || v === null ? null : n + v;
    }, 0);
  const known = list.filter((c) => c.entriesRead !== null);
  return {
    exists: list.some((c) => c.exists),
    length: sum((c) => c.length) ?? 0,
    groupExists: list.some((c) => c.groupExists),
    lag: sum((c) => c.lag),
    pending: sum((c) => c.pending) ?? 0,
    entriesRead: known.length ? (sum((c) => c.entriesRead ?? 0) ?? 0) : null,
    ratePerSec: list.length ? sum((c) => c.ratePerSec) : null,
  };
}

/** Entries the group has finished with on a stream: delivered minus still pending. */
export function acked(s: Pick<StreamSample, 'read'>): number | null {
  const g = s.read.group;
  return g && g.entriesRead !== null ? g.entriesRead - g.pending : null;
}

/** Consumers of the given streams merged by name: pending summed, the least idle, the longest-idle oldest entry. */
function mergeConsumers(
  streams: readonly StreamSample[],
  pend: (e: PendingEntry | null) => PendingStatus | null,
): Array<Omit<ConsumerStatus, 'state'>> {
  const byName = new Map<string, Omit<ConsumerStatus, 'state'>>();
  for (const c of streams.flatMap((s) => s.consumers)) {
    const was = byName.get(c.name);
    const inactive = [was?.inactiveMs, c.inactiveMs].filter(
      (v): v is number => typeof v === 'number',
    );
    byName.set(c.name, {
      name: c.name,
      pending: (was?.pending ?? 0) + c.pending,
      idleMs: Math.min(was?.idleMs ?? Infinity, c.idleMs),
      inactiveMs: inactive.length ? Math.min(...inactive) : null,
      oldestPending: longestIdle([was?.oldestPending ?? null, pend(c.oldest)]),
    });
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function longestIdle(list: ReadonlyArray<PendingStatus | null>): PendingStatus | null {
  let out: PendingStatus | null = null;
  for (const e of list) if (e && (!out || e.idleMs > out.idleMs)) out = e;
  return out;
}
