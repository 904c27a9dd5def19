/**
 * Prometheus metrics of one worker process. Counters and histograms are fed
 * by the worker's events at the edge (the loop never calls prom-client);
 * process gauges are read from the worker on scrape; fleet gauges (streams,
 * groups, DLQs, allow-listed sources) come from Redis on scrape through a
 * cached, pipelined read on a connection of their own (fleet-gauges.ts).
 * Every metric is described in docs/observability.md.
 */
import type { Redis } from 'ioredis';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { WorkerHandle } from '../worker/worker-process.js';
import { FleetReader, registerFleetGauges } from './fleet-gauges.js';
import { registerProviderMetrics } from './provider-metrics.js';

/**
 * Outcomes of streambed_entries_total. ok, error and deduped partition the
 * answered entries; the others are views that overlap them: dead_lettered
 * (a DLQ record was written: every error answer today), redelivered (answered
 * on a delivery after the first), reclaimed (taken over from another consumer
 * by XCLAIM), fenced (computed, but another consumer owned it by then).
 */
export const OUTCOMES = [
  'ok',
  'error',
  'deduped',
  'dead_lettered',
  'redelivered',
  'reclaimed',
  'fenced',
] as const;

export interface WorkerMetricsOptions {
  /** Sources exported with a `source` label (METRICS_SOURCES); default none. */
  sources?: readonly string[];
  /** How long one Redis read of fleet state serves scrapes (default 1000 ms). */
  cacheMs?: number;
}

export function workerMetrics(worker: WorkerHandle, options: WorkerMetricsOptions = {}): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const models = () => [...worker.models.keys()];

  const entries = new Counter({
    name: 'streambed_entries_total',
    help: 'Entries by model and outcome: ok, error, deduped (answered); dead_lettered, redelivered, reclaimed, fenced (overlapping views).',
    labelNames: ['model', 'outcome'],
    registers: [registry],
    // Each model's outcome series start at 0, so rate() and alerts see them before the first event.
    collect() {
      for (const m of models()) zero(m);
    },
  });
  const batchSeconds = new Histogram({
    name: 'streambed_batch_duration_seconds',
    help: 'Time a micro-batch spent computing in a worker thread.',
    labelNames: ['model'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const batchTexts = new Histogram({
    name: 'streambed_batch_texts',
    help: 'Texts per micro-batch.',
    labelNames: ['model'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const batchTokens = new Histogram({
    name: 'streambed_batch_tokens',
    help: 'Padded tokens (texts x longest) per micro-batch: the work the thread did.',
    labelNames: ['model'],
    buckets: [16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384],
    registers: [registry],
  });
  const busySeconds = new Counter({
    name: 'streambed_pool_busy_seconds_total',
    help: 'Thread time spent computing batches; rate() / streambed_pool_threads is the recent utilisation.',
    labelNames: ['model'],
    registers: [registry],
  });
  const splits = new Counter({
    name: 'streambed_batch_splits_total',
    help: 'Failed micro-batches split in halves to isolate the texts at fault.',
    labelNames: ['model'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'streambed_end_to_end_seconds',
    help: 'From the request entry id time (when it was added) to its result written.',
    labelNames: ['model'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [registry],
  });
  new Gauge({
    name: 'streambed_model_load_seconds',
    help: 'How long each loaded model took to load on all threads.',
    labelNames: ['model'],
    registers: [registry],
    collect() {
      for (const [name, m] of worker.models) this.set({ model: name }, m.loadMs / 1000);
    },
  });
  const stat = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  stat(
    'streambed_ready',
    '1 when /readyz would answer 200 (Redis reachable, models loaded, not draining).',
    () => (worker.readiness().ready ? 1 : 0),
  );
  stat(
    'streambed_batches_in_flight',
    'Micro-batches queued or running in the pool.',
    () => worker.stats().batchesInFlight,
  );
  stat(
    'streambed_entries_held',
    'Entries delivered to this process and not yet answered.',
    () => worker.stats().held,
  );
  stat(
    'streambed_pool_utilization',
    'Fraction of worker-thread time spent computing since the process started (piscina).',
    () => worker.stats().poolUtilization,
  );
  stat(
    'streambed_pool_queue',
    'Micro-batches waiting for a free thread.',
    () => worker.stats().poolQueue,
  );
  stat('streambed_pool_threads', 'Worker threads in the pool.', () => worker.stats().threads);

  const zeroed = new Set<string>();
  const zero = (model: string) => {
    if (zeroed.has(model)) return;
    zeroed.add(model);
    for (const outcome of OUTCOMES) entries.inc({ model, outcome }, 0);
  };
  worker.events.on('answered', (e) => {
    zero(e.model);
    entries.inc({ model: e.model, outcome: e.outcome });
    // The publish script writes a DLQ record with every error answer.
    if (e.outcome === 'error') entries.inc({ model: e.model, outcome: 'dead_lettered' });
    if (e.deliveries > 1) entries.inc({ model: e.model, outcome: 'redelivered' });
    latency.observe({ model: e.model }, e.latencyMs / 1000);
  });
  worker.events.on('reclaimed', (e) => {
    zero(e.model);
    entries.inc({ model: e.model, outcome: 'reclaimed' }, e.count);
  });
  worker.events.on('fenced', (e) => {
    zero(e.model);
    entries.inc({ model: e.model, outcome: 'fenced' });
  });
  // Tokens per source: every model's, for the METRICS_SOURCES allow-list only (bounded labels).
  const allowed = new Set(options.sources ?? []);
  const sourceTokens = new Counter({
    name: 'streambed_source_tokens_total',
    help: "Tokens computed per model and source (METRICS_SOURCES only); a remote model's are its provider's usage, shared out per text.",
    labelNames: ['model', 'source'],
    registers: [registry],
  });
  worker.events.on('batch', (e) => {
    for (const [source, n] of e.bySource ?? [])
      if (allowed.has(source)) sourceTokens.inc({ model: e.model, source }, n);
    batchSeconds.observe({ model: e.model }, e.ms / 1000);
    batchTexts.observe({ model: e.model }, e.texts);
    batchTokens.observe({ model: e.model }, e.paddedTokens);
    busySeconds.inc({ model: e.model }, e.ms / 1000);
  });
  worker.events.on('split', (e) => splits.inc({ model: e.model }));
  registerProviderMetrics(registry, worker);
  new Gauge({
    name: 'streambed_models_loaded',
    help: 'Models loaded in this process (out of those configured).',
    registers: [registry],
    collect() {
      this.set(worker.models.size);
    },
  });

  const reader = new FleetReader(fleetConnection(worker), {
    keys: worker.keys,
    models,
    sources: options.sources ?? [],
    cacheMs: options.cacheMs ?? 1000,
    timeoutMs: 2000,
    onError: (err) => worker.log.warn({ err: err.message }, 'fleet metrics read failed'),
  });
  registerFleetGauges(registry, reader);
  return registry;
}

/**
 * A connection of the metrics' own, opened on the first scrape and closed
 * with the worker's. No offline queue: while Redis is away a scrape fails
 * fast (fleet gauges absent) instead of piling commands up behind the outage.
 */
function fleetConnection(worker: WorkerHandle): () => Promise<Redis> {
  let conn: Redis | undefined;
  let firstReady: Promise<void> | undefined;
  let closed = false;
  worker.redis.once('end', () => {
    closed = true;
    conn?.disconnect();
  });
  return async () => {
    if (closed) throw new Error('worker stopped');
    if (!conn) {
      conn = worker.redis.duplicate({
        connectionName: `${worker.consumer}:metrics`,
        enableOfflineQueue: false,
      });
      conn.on('error', (err: Error) =>
        worker.log.debug({ err: err.message }, 'metrics redis connection error'),
      );
      const c = conn;
      firstReady = new Promise((resolve) => c.once('ready', () => resolve()));
    }
    // Only the first connection is waited for; later, a scrape during an outage fails fast.
    if (conn.status !== 'ready') await firstReady;
    return conn;
  };
}
