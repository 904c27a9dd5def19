/**
 * The `streambed status` report: schema version 1 (documented field by field
 * in docs/observability.md; a field is never renamed or repurposed within a
 * version, only added) and its derivation from samples: rates from two
 * samples, ETA, each source's staleness class and threshold breaches.
 */
import type { Lane } from '../keys.js';
import { duration } from './format.js';
import type { LaneSample, Sample } from './gather.js';
import { idTimeMs, type PendingEntry } from './redis-reads.js';

export const STATUS_SCHEMA_VERSION = 1;

export type SourceState = 'active' | 'idle' | 'waiting' | 'stale' | 'done';

export interface PendingStatus {
  id: string;
  consumer: string;
  /** Since it was last delivered (XPENDING idle). */
  idleMs: number;
  /** Since it was added (its id's time). */
  ageMs: number;
  deliveries: number;
}

export interface ConsumerStatus {
  name: string;
  pending: number;
  /** Since the consumer last read or acked (XINFO CONSUMERS idle). */
  idleMs: number;
  oldestPending: PendingStatus | null;
}

export interface LaneStatus {
  lane: Lane;
  stream: string;
  exists: boolean;
  length: number;
  groupExists: boolean;
  /** Entries not yet delivered to the group; null when Redis cannot tell (after trims/deletes). */
  lag: number | null;
  pending: number;
  entriesRead: number | null;
  consumers: ConsumerStatus[];
  oldestPending: PendingStatus | null;
  /** The oldest pending entries, at most --pending-sample of them. */
  pendingSample: PendingStatus[];
  /** Entries acknowledged per second over rateWindowMs; null with one sample. */
  ratePerSec: number | null;
}

export interface ModelStatus {
  model: string;
  dlq: string;
  dlqLength: number;
  lanes: LaneStatus[];
}

export interface SourceStatus {
  source: string;
  submitted: number;
  done: number;
  failed: number;
  deduped: number;
  /** submitted - (done + failed + deduped), never below 0; null when nothing was counted as submitted. */
  remaining: number | null;
  percent: number | null;
  ratePerSec: number | null;
  etaSec: number | null;
  lastDoneMs: number | null;
  lastDoneAgeMs: number | null;
  state: SourceState;
}

export interface Thresholds {
  /** Breach when a pending entry has been idle longer than this; null = not checked. */
  maxPendingAgeMs: number | null;
  /** Breach when a DLQ holds more records than this; null = not checked. */
  maxDlq: number | null;
  /** A source with work left and no completion for this long is stale (a breach). */
  staleMs: number;
  /** A source with a completion this recent is active. */
  activeMs: number;
}

export type BreachKind = 'pending_age' | 'dlq' | 'stale';

export interface Breach {
  kind: BreachKind;
  /** The stream, DLQ stream or source concerned. */
  subject: string;
  value: number;
  threshold: number;
  message: string;
}

export interface StatusReport {
  schemaVersion: typeof STATUS_SCHEMA_VERSION;
  generatedAtMs: number;
  prefix: string;
  group: string;
  rateWindowMs: number | null;
  thresholds: Thresholds;
  models: ModelStatus[];
  sources: SourceStatus[];
  breaches: Breach[];
}

export function buildReport(
  now: Sample,
  before: Sample | undefined,
  ctx: { prefix: string; group: string; thresholds: Thresholds },
): StatusReport {
  const t = ctx.thresholds;
  const windowMs = before && now.atMs > before.atMs ? now.atMs - before.atMs : null;
  const rate = (a: number | null, b: number | null | undefined) =>
    windowMs === null || a === null || b === null || b === undefined || a < b
      ? null
      : round2(((a - b) * 1000) / windowMs);

  const models = now.models.map((m): ModelStatus => {
    const prev = before?.models.find((x) => x.model === m.model);
    return {
      model: m.model,
      dlq: m.dlq,
      dlqLength: m.dlqLength,
      lanes: m.lanes.map((l) => {
        const p = prev?.lanes.find((x) => x.lane === l.lane);
        return laneStatus(l, now.atMs, rate(acked(l), p ? acked(p) : undefined));
      }),
    };
  });

  const sources = now.sources.map((s): SourceStatus => {
    const { submitted, done, failed, deduped, lastDoneMs } = s.progress;
    const finished = done + failed + deduped;
    const remaining = submitted > 0 ? Math.max(0, submitted - finished) : null;
    const p = before?.sources.find((x) => x.source === s.source)?.progress;
    const ratePerSec = rate(finished, p ? p.done + p.failed + p.deduped : undefined);
    const lastDoneAgeMs = lastDoneMs === null ? null : Math.max(0, now.atMs - lastDoneMs);
    return {
      source: s.source,
      submitted,
      done,
      failed,
      deduped,
      remaining,
      percent: submitted > 0 ? round2(Math.min(100, (finished * 100) / submitted)) : null,
      ratePerSec,
      etaSec:
        remaining === 0
          ? 0
          : remaining !== null && ratePerSec
            ? Math.ceil(remaining / ratePerSec)
            : null,
      lastDoneMs,
      lastDoneAgeMs,
      state: sourceState(remaining, lastDoneAgeMs, t),
    };
  });

  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    generatedAtMs: now.atMs,
    prefix: ctx.prefix,
    group: ctx.group,
    rateWindowMs: windowMs,
    thresholds: t,
    models,
    sources,
    breaches: breaches(now, models, sources, t),
  };
}

/**
 * done: everything submitted is finished. active: a completion within activeMs.
 * stale: work left and no completion for staleMs. waiting: work left and no
 * completion ever. idle: anything else (between active and stale, or untracked).
 */
export function sourceState(
  remaining: number | null,
  lastDoneAgeMs: number | null,
  t: Pick<Thresholds, 'staleMs' | 'activeMs'>,
): SourceState {
  if (remaining === 0) return 'done';
  if (lastDoneAgeMs !== null && lastDoneAgeMs <= t.activeMs) return 'active';
  if (remaining !== null && remaining > 0) {
    if (lastDoneAgeMs === null) return 'waiting';
    if (lastDoneAgeMs > t.staleMs) return 'stale';
  }
  return 'idle';
}

function breaches(
  sample: Sample,
  models: ModelStatus[],
  sources: SourceStatus[],
  t: Thresholds,
): Breach[] {
  const out: Breach[] = [];
  if (t.maxPendingAgeMs !== null) {
    for (const l of sample.models.flatMap((m) => m.lanes)) {
      if (!l.overIdle) continue;
      out.push({
        kind: 'pending_age',
        subject: l.stream,
        value: l.overIdle.idleMs,
        threshold: t.maxPendingAgeMs,
        message: `${l.stream}: entry ${l.overIdle.id} on ${l.overIdle.consumer} idle ${duration(l.overIdle.idleMs)} (> ${duration(t.maxPendingAgeMs)})`,
      });
    }
  }
  if (t.maxDlq !== null) {
    for (const m of models) {
      if (m.dlqLength <= t.maxDlq) continue;
      out.push({
        kind: 'dlq',
        subject: m.dlq,
        value: m.dlqLength,
        threshold: t.maxDlq,
        message: `${m.dlq}: ${m.dlqLength} dead letters (> ${t.maxDlq})`,
      });
    }
  }
  for (const s of sources) {
    if (s.state !== 'stale') continue;
    out.push({
      kind: 'stale',
      subject: s.source,
      value: s.lastDoneAgeMs ?? 0,
      threshold: t.staleMs,
      message: `source ${s.source}: ${s.remaining} left, none finished in ${duration(s.lastDoneAgeMs ?? 0)} (> ${duration(t.staleMs)})`,
    });
  }
  return out;
}

function laneStatus(l: LaneSample, atMs: number, ratePerSec: number | null): LaneStatus {
  const pend = (e: PendingEntry): PendingStatus => ({
    id: e.id,
    consumer: e.consumer,
    idleMs: e.idleMs,
    ageMs: Math.max(0, atMs - idTimeMs(e.id)),
    deliveries: e.deliveries,
  });
  const g = l.read.group;
  return {
    lane: l.lane,
    stream: l.stream,
    exists: l.read.exists,
    length: l.read.length,
    groupExists: g !== null,
    lag: g ? g.lag : null,
    pending: g ? g.pending : 0,
    entriesRead: g ? g.entriesRead : null,
    consumers: l.consumers.map((c) => ({
      name: c.name,
      pending: c.pending,
      idleMs: c.idleMs,
      oldestPending: c.oldest ? pend(c.oldest) : null,
    })),
    oldestPending: l.read.pending[0] ? pend(l.read.pending[0]) : null,
    pendingSample: l.read.pending.map(pend),
    ratePerSec,
  };
}

/** Entries the group has finished with: delivered minus still pending. */
function acked(l: LaneSample): number | null {
  const g = l.read.group;
  return g && g.entriesRead !== null ? g.entriesRead - g.pending : null;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
