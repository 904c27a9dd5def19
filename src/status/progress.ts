/**
 * Progress in the status report: per source (the lifetime counters of its
 * progress hash) and per backfill job (its submitted set and reply stream,
 * so a `backfill --restart` starts a job's numbers from zero). Done and
 * failed are shown apart, and anything finished has no ETA.
 */
import type { JobSample } from './jobs.js';
import type { ProgressRecord } from './redis-reads.js';

export type ProgressState = 'active' | 'idle' | 'waiting' | 'stale' | 'done';

export interface SourceStatus {
  source: string;
  submitted: number;
  /** Answered with vectors (computed). */
  done: number;
  /** Answered with an error (dead-lettered). */
  failed: number;
  /** Answered with vectors already stored. */
  deduped: number;
  /** Dead letters re-submitted (`dlq replay`); their first failure is no longer in `failed`. */
  replayed: number;
  /** done + failed + deduped. */
  finished: number;
  /** submitted - finished, never below 0; null when nothing was counted as submitted. */
  remaining: number | null;
  /** finished x 100 / submitted, at most 100; null when submitted is 0. */
  percent: number | null;
  ratePerSec: number | null;
  /** remaining / rate; null when done or without a rate. */
  etaSec: number | null;
  lastDoneMs: number | null;
  lastDoneAgeMs: number | null;
  state: ProgressState;
}

export interface JobStatus {
  job: string;
  submitted: number;
  /** Answers written (ok + failed). */
  answered: number;
  /** Answers with vectors. */
  ok: number;
  /** Error answers (dead-lettered pages). */
  failed: number;
  /** submitted - answered, never below 0. */
  remaining: number;
  percent: number | null;
  ratePerSec: number | null;
  /** remaining / rate; null when done or without a rate. */
  etaSec: number | null;
  /** When the request of its first answer was added; null before any answer. */
  startedMs: number | null;
  lastAnswerMs: number | null;
  /** When its last answer was written, once everything submitted is answered; else null. */
  finishedMs: number | null;
  state: ProgressState;
}

export interface ProgressThresholds {
  /** Work left and nothing finished for this long: stale. */
  staleMs: number;
  /** Something finished this recently: active. */
  activeMs: number;
}

/** finished per second between two samples, or null. */
export type Rate = (now: number, before: number | undefined) => number | null;

export function sourceStatus(
  source: string,
  p: ProgressRecord,
  before: ProgressRecord | undefined,
  ctx: { atMs: number; rate: Rate; thresholds: ProgressThresholds },
): SourceStatus {
  const finished = p.done + p.failed + p.deduped;
  const remaining = p.submitted > 0 ? Math.max(0, p.submitted - finished) : null;
  const ratePerSec = ctx.rate(
    finished,
    before ? before.done + before.failed + before.deduped : undefined,
  );
  const lastDoneAgeMs = p.lastDoneMs === null ? null : Math.max(0, ctx.atMs - p.lastDoneMs);
  return {
    source,
    submitted: p.submitted,
    done: p.done,
    failed: p.failed,
    deduped: p.deduped,
    replayed: p.replayed,
    finished,
    remaining,
    percent: percent(finished, p.submitted),
    ratePerSec,
    etaSec: eta(remaining, ratePerSec),
    lastDoneMs: p.lastDoneMs,
    lastDoneAgeMs,
    state: progressState(remaining, lastDoneAgeMs, ctx.thresholds),
  };
}

export function jobStatus(
  j: JobSample,
  before: JobSample | undefined,
  ctx: { atMs: number; rate: Rate; thresholds: ProgressThresholds },
): JobStatus {
  const remaining = Math.max(0, j.submitted - j.answered);
  const ratePerSec = ctx.rate(j.answered, before?.answered);
  const lastAge = j.lastAnswerMs === null ? null : Math.max(0, ctx.atMs - j.lastAnswerMs);
  const done = j.submitted > 0 && remaining === 0;
  return {
    job: j.job,
    submitted: j.submitted,
    answered: j.answered,
    ok: Math.max(0, j.answered - j.failed),
    failed: j.failed,
    remaining,
    percent: percent(j.answered, j.submitted),
    ratePerSec,
    etaSec: eta(remaining, ratePerSec),
    startedMs: j.firstRequestMs,
    lastAnswerMs: j.lastAnswerMs,
    finishedMs: done ? j.lastAnswerMs : null,
    state: progressState(j.submitted > 0 ? remaining : null, lastAge, ctx.thresholds),
  };
}

/**
 * done: everything submitted is finished. active: a completion within activeMs.
 * stale: work left and no completion for staleMs. waiting: work left and no
 * completion ever. idle: anything else (between active and stale, or untracked).
 */
export function progressState(
  remaining: number | null,
  lastDoneAgeMs: number | null,
  t: ProgressThresholds,
): ProgressState {
  if (remaining === 0) return 'done';
  if (lastDoneAgeMs !== null && lastDoneAgeMs <= t.activeMs) return 'active';
  if (remaining !== null && remaining > 0) {
    if (lastDoneAgeMs === null) return 'waiting';
    if (lastDoneAgeMs > t.staleMs) return 'stale';
  }
  return 'idle';
}

function percent(finished: number, submitted: number): number | null {
  return submitted > 0 ? Math.round(Math.min(100, (finished * 100) / submitted) * 100) / 100 : null;
}

/** Seconds left at the current rate; finished work has none (not 0). */
function eta(remaining: number | null, ratePerSec: number | null): number | null {
  return remaining && ratePerSec ? Math.ceil(remaining / ratePerSec) : null;
}
