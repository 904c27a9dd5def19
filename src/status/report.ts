/**
 * The `streambed status` report: schema version 2 (documented field by field
 * in docs/observability.md; a field is never renamed or repurposed within a
 * version, only added) and its derivation from samples: rates from two
 * samples, per-model streams and consumers (model-status.ts), progress per
 * source and job (progress.ts) and threshold breaches (breaches.ts).
 */
import { type Breach, findBreaches, type Thresholds } from './breaches.js';
import type { Sample, StreamSample } from './gather.js';
import { acked, type ModelStatus, modelStatus } from './model-status.js';
import { type JobStatus, jobStatus, type SourceStatus, sourceStatus } from './progress.js';

export type { Breach, BreachKind, Thresholds } from './breaches.js';
export type {
  ConsumerState,
  ConsumerStatus,
  LaneStatus,
  ModelStatus,
  PendingStatus,
  StreamStatus,
} from './model-status.js';
export type { JobStatus, ProgressState, SourceStatus } from './progress.js';
export { progressState as sourceState } from './progress.js';

/** 2: bulk lanes summed over per-source streams, `streams[]`, consumer states, jobs, etaSec null when done. */
export const STATUS_SCHEMA_VERSION = 2;

export interface StatusReport {
  schemaVersion: typeof STATUS_SCHEMA_VERSION;
  generatedAtMs: number;
  prefix: string;
  group: string;
  rateWindowMs: number | null;
  thresholds: Thresholds;
  models: ModelStatus[];
  sources: SourceStatus[];
  jobs: JobStatus[];
  breaches: Breach[];
}

export function buildReport(
  now: Sample,
  before: Sample | undefined,
  ctx: { prefix: string; group: string; thresholds: Thresholds; pendingSample?: number },
): StatusReport {
  const t = ctx.thresholds;
  const windowMs = before && now.atMs > before.atMs ? now.atMs - before.atMs : null;
  const rate = (a: number | null, b: number | null | undefined) =>
    windowMs === null || a === null || b === null || b === undefined || a < b
      ? null
      : Math.round(((a - b) * 100_000) / windowMs) / 100;
  const prevStreams = new Map<string, StreamSample>(
    (before?.models ?? []).flatMap((m) => m.streams.map((s) => [s.stream, s] as const)),
  );
  const rateOf = (s: StreamSample) => {
    const p = prevStreams.get(s.stream);
    return rate(acked(s), p ? acked(p) : undefined);
  };
  const models = now.models.map((m) =>
    modelStatus(m, {
      atMs: now.atMs,
      liveMs: t.liveMs,
      pendingSample: ctx.pendingSample ?? 10,
      rateOf,
    }),
  );
  const progress = { atMs: now.atMs, rate, thresholds: t };
  const sources = now.sources.map((s) =>
    sourceStatus(
      s.source,
      s.progress,
      before?.sources.find((x) => x.source === s.source)?.progress,
      progress,
    ),
  );
  const jobs = now.jobs.map((j) =>
    jobStatus(
      j,
      before?.jobs.find((x) => x.job === j.job),
      progress,
    ),
  );
  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    generatedAtMs: now.atMs,
    prefix: ctx.prefix,
    group: ctx.group,
    rateWindowMs: windowMs,
    thresholds: t,
    models,
    sources,
    jobs,
    breaches: findBreaches(now.models, models, sources, t, now.evictionRisks),
  };
}
