/**
 * Prometheus metrics of one worker process, fed by the worker's events at the
 * edge (the loop never calls prom-client itself).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { WorkerHandle } from '../worker/worker-process.js';

export function workerMetrics(worker: WorkerHandle): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const entries = new Counter({
    name: 'streambed_entries_total',
    help: 'Entries finished, by model and outcome (ok, error, dead_lettered, deduped, reclaimed, redelivered).',
    labelNames: ['model', 'outcome'],
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'streambed_batch_duration_seconds',
    help: 'Time a micro-batch spent in a worker thread.',
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
    help: 'Padded tokens per micro-batch.',
    labelNames: ['model'],
    buckets: [16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'streambed_end_to_end_seconds',
    help: 'From the request entry id time to its result written.',
    labelNames: ['model'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [registry],
  });
  const modelLoad = new Gauge({
    name: 'streambed_model_load_seconds',
    help: 'How long each model took to load on all threads.',
    labelNames: ['model'],
    registers: [registry],
  });
  new Gauge({
    name: 'streambed_batches_in_flight',
    help: 'Micro-batches queued or running in the pool.',
    registers: [registry],
    collect() {
      this.set(worker.stats().batchesInFlight);
    },
  });
  new Gauge({
    name: 'streambed_entries_held',
    help: 'Entries delivered to this process and not yet answered.',
    registers: [registry],
    collect() {
      this.set(worker.stats().held);
    },
  });
  new Gauge({
    name: 'streambed_pool_utilization',
    help: 'Fraction of worker-thread time spent computing.',
    registers: [registry],
    collect() {
      this.set(worker.stats().poolUtilization);
    },
  });
  new Gauge({
    name: 'streambed_pool_queue',
    help: 'Micro-batches waiting for a free thread.',
    registers: [registry],
    collect() {
      this.set(worker.stats().poolQueue);
    },
  });

  worker.events.on('answered', (e) => {
    const outcome = e.outcome === 'error' ? 'error' : e.outcome;
    entries.inc({ model: e.model, outcome });
    if (e.code === 'max_deliveries' || e.outcome === 'error')
      entries.inc({ model: e.model, outcome: 'dead_lettered' });
    if (e.deliveries > 1) entries.inc({ model: e.model, outcome: 'redelivered' });
    latency.observe({ model: e.model }, e.latencyMs / 1000);
  });
  worker.events.on('reclaimed', (e) =>
    entries.inc({ model: e.model, outcome: 'reclaimed' }, e.count),
  );
  worker.events.on('batch', (e) => {
    batchSeconds.observe({ model: e.model }, e.ms / 1000);
    batchTexts.observe({ model: e.model }, e.texts);
    batchTokens.observe({ model: e.model }, e.paddedTokens);
  });
  void worker.started.then(() => {
    for (const [name, m] of worker.models) modelLoad.set({ model: name }, m.loadMs / 1000);
  });
  return registry;
}
