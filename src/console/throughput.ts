/**
 * The console's throughput chart data: entries acknowledged per second per
 * model over the last hour, in fixed buckets, from the acknowledged totals
 * of successive status samples. Kept in memory, so the chart starts when the
 * console starts (Prometheus and the Grafana dashboard keep the long view).
 */
import type { Sample } from '../status/gather.js';
import { acked } from '../status/model-status.js';

export const HISTORY_MS = 60 * 60_000;
export const BUCKET_MS = 10_000;

export interface ThroughputSeries {
  bucketMs: number;
  /** Start of the first bucket, epoch ms (Redis time). */
  startMs: number;
  /** When the console's first sample was taken: the chart shows no more than it knows. */
  sinceMs: number | null;
  /** Model -> entries per second in each bucket (null: the console was not sampling then). */
  models: Record<string, Array<number | null>>;
}

export class Throughput {
  /** Bucket start -> model -> entries acknowledged in it. */
  private readonly buckets = new Map<number, Map<string, number>>();
  private last: { atMs: number; totals: Map<string, number> } | undefined;
  private firstMs: number | null = null;

  add(sample: Sample): void {
    const totals = new Map(sample.models.map((m) => [m.model, modelAcked(m.streams)]));
    const before = this.last;
    this.firstMs ??= sample.atMs;
    this.last = { atMs: sample.atMs, totals };
    if (!before) return;
    const bucket = Math.floor(sample.atMs / BUCKET_MS) * BUCKET_MS;
    const counts = this.buckets.get(bucket) ?? new Map<string, number>();
    for (const [model, total] of totals) {
      // A stream deleted and re-created starts from 0 again: no negative throughput.
      const delta = Math.max(0, total - (before.totals.get(model) ?? total));
      counts.set(model, (counts.get(model) ?? 0) + delta);
    }
    this.buckets.set(bucket, counts);
    for (const start of this.buckets.keys())
      if (start < sample.atMs - HISTORY_MS) this.buckets.delete(start);
  }

  series(nowMs: number): ThroughputSeries {
    const end = Math.floor(nowMs / BUCKET_MS) * BUCKET_MS;
    const startMs = end - HISTORY_MS + BUCKET_MS;
    const names = new Set([...this.buckets.values()].flatMap((b) => [...b.keys()]));
    const models: ThroughputSeries['models'] = {};
    for (const name of [...names].sort()) {
      const points: Array<number | null> = [];
      for (let t = startMs; t <= end; t += BUCKET_MS) {
        const n = this.buckets.get(t)?.get(name);
        // The bucket under way is a rate over its seconds so far, not a false dip.
        const span = t === end ? Math.max(1000, nowMs - end) : BUCKET_MS;
        points.push(n === undefined ? null : Math.round((n * 100_000) / span) / 100);
      }
      models[name] = points;
    }
    return { bucketMs: BUCKET_MS, startMs, sinceMs: this.firstMs, models };
  }
}

function modelAcked(streams: Sample['models'][number]['streams']): number {
  return streams.reduce((n, s) => n + (acked(s) ?? 0), 0);
}
