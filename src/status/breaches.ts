/**
 * What `status --check` fails on, each breach with the stream, DLQ, model or
 * source concerned and a one-line message (docs/observability.md).
 */
import { evictionMessage, type EvictionRisk } from '../redis/eviction.js';
import { duration } from './format.js';
import type { ModelSample } from './gather.js';
import type { ModelStatus } from './model-status.js';
import type { SourceStatus } from './progress.js';

export type BreachKind =
  'pending_age' | 'dlq' | 'stale' | 'no_live_consumer' | 'unserved' | 'eviction';

export interface Breach {
  kind: BreachKind;
  /** The stream, DLQ stream, model or source concerned. */
  subject: string;
  value: number;
  threshold: number;
  message: string;
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
  /** A consumer seen (XINFO CONSUMERS idle) within this is live. */
  liveMs: number;
}

export function findBreaches(
  samples: readonly ModelSample[],
  models: readonly ModelStatus[],
  sources: readonly SourceStatus[],
  t: Thresholds,
  evictionRisks: readonly EvictionRisk[] = [],
): Breach[] {
  const out: Breach[] = evictionRisks.map((r) => ({
    kind: 'eviction',
    subject: r.node,
    value: r.maxmemoryBytes,
    threshold: 0,
    message: evictionMessage(r),
  }));
  if (t.maxPendingAgeMs !== null) {
    for (const s of samples.flatMap((m) => m.streams)) {
      if (!s.overIdle) continue;
      out.push({
        kind: 'pending_age',
        subject: s.stream,
        value: s.overIdle.idleMs,
        threshold: t.maxPendingAgeMs,
        message: `${s.stream}: entry ${s.overIdle.id} on ${s.overIdle.consumer} idle ${duration(s.overIdle.idleMs)} (> ${duration(t.maxPendingAgeMs)})`,
      });
    }
  }
  for (const m of models) {
    if (m.backlog === 0 || m.liveConsumers > 0) continue;
    if (!m.streams.some((s) => s.groupExists)) {
      out.push({
        kind: 'unserved',
        subject: m.model,
        value: m.backlog,
        threshold: 0,
        message: `model ${m.model}: ${m.backlog} entries waiting and no consumer group on its streams: no worker serves it (is it in MODELS?)`,
      });
      continue;
    }
    // Quiet consumers (Redis < 7.2 cannot tell them from dead) hold pending entries only: not a breach yet.
    if (m.consumers.some((c) => c.state === 'quiet')) continue;
    out.push({
      kind: 'no_live_consumer',
      subject: m.model,
      value: m.backlog,
      threshold: t.liveMs,
      message: `model ${m.model}: ${m.backlog} entries waiting and no live consumer (${m.consumers.length} known, none seen in ${duration(t.liveMs)})`,
    });
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
