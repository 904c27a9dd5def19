/**
 * Issue 4 acceptance for metrics and progress: after 1,000 envelopes from 3
 * sources (some invalid), the progress counters and the /metrics counters
 * equal the exact numbers sent, per source and outcome; /metrics parses as
 * Prometheus text and carries every metric the docs and the dashboard name.
 */
import fs from 'node:fs';
import type http from 'node:http';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { loadConfig } from '../src/config/load.js';
import { gatewayMetrics } from '../src/gateway/gateway-metrics.js';
import { boundPort, startHttp } from '../src/http/server.js';
import { keys } from '../src/keys.js';
import { logWorkerEvents } from '../src/metrics/event-log.js';
import { workerMetrics } from '../src/metrics/worker-metrics.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { tinyModel } from './helpers/models.js';
import { type Exposition, parseExposition } from './helpers/prometheus.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('metrics');
const k = keys(prefix);
const SOURCES = ['alpha', 'beta', 'gamma'] as const;
/** gamma is left off the allow list: it must get no per-source series. */
const ALLOWED = ['alpha', 'beta'];
let worker: WorkerHandle;
let server: http.Server;
let client: StreambedClient;
/** Log lines of the event subscriber, as JSON. */
const logged: Array<Record<string, unknown>> = [];

async function scrape(): Promise<Exposition> {
  const res = await fetch(`http://127.0.0.1:${boundPort(server)}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

beforeAll(async () => {
  const model = await tinyModel({ hidden: 64 });
  worker = await startTestWorker(prefix, {
    MODELS: `tiny=${model.dir};dtype=fp32`,
    THREADS: 2,
    CLAIM_IDLE_MS: 60_000,
  });
  server = await startHttp(0, worker, workerMetrics(worker, { sources: ALLOWED }));
  const sink = {
    write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>),
  };
  logWorkerEvents(worker.events, pino({ level: 'debug' }, sink));
  client = new StreambedClient({ redis, prefix });
});

afterAll(async () => {
  await client.close();
  await new Promise((r) => server.close(r));
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('metrics and progress counters', () => {
  it('count 1,000 envelopes from 3 sources exactly, per source and outcome', async () => {
    const sent = Object.fromEntries(SOURCES.map((s) => [s, { total: 0, bad: 0 }]));
    const pages = Array.from({ length: 1000 }, (_, i) => {
      const source = SOURCES[i % 3] as string;
      // Every 41st page is blank: answered `invalid`, dead-lettered, counted as failed.
      const bad = i % 41 === 7;
      sent[source]!.total++;
      if (bad) sent[source]!.bad++;
      return { id: `p${i}`, source, text: bad ? '   ' : `page ${i} ${'word '.repeat(i % 30)}` };
    });
    const bad = Object.values(sent).reduce((n, s) => n + s.bad, 0);
    expect(bad).toBeGreaterThan(20);
    const startedMs = Date.now();
    for (const source of SOURCES) {
      await client.submit(
        pages.filter((p) => p.source === source),
        { model: 'tiny', replyTo: `${prefix}:reply:${source}/m` },
      );
    }
    const stream = k.request('tiny');
    await until(
      'all 1,000 acknowledged',
      async () => {
        const g = await groupInfo(redis, stream, k.group);
        return g?.['entries-read'] === 1000 && g.pending === 0;
      },
      60_000,
    );

    // Progress counters: written by the SDK (submitted) and the publish script (the rest).
    for (const source of SOURCES) {
      const h = await redis.hgetall(k.progress(source));
      const want = sent[source]!;
      expect(Number(h.submitted), source).toBe(want.total);
      expect(Number(h.done), source).toBe(want.total - want.bad);
      expect(Number(h.failed), source).toBe(want.bad);
      expect(h.deduped, source).toBeUndefined();
      expect(Number(h.last_done_ms)).toBeGreaterThanOrEqual(startedMs);
      expect(Number(h.last_done_ms)).toBeLessThanOrEqual(Date.now());
    }
    expect(await redis.xlen(k.dlq('tiny'))).toBe(bad);

    // Counters are fed by events right after each write: wait for the last one.
    const m = await until('counters caught up', async () => {
      const e = await scrape();
      return e.value('streambed_entries_total', { model: 'tiny', outcome: 'ok' }) === 1000 - bad
        ? e
        : undefined;
    });
    const entries = (outcome: string) =>
      m.value('streambed_entries_total', { model: 'tiny', outcome });
    expect(entries('ok')).toBe(1000 - bad);
    expect(entries('error')).toBe(bad);
    expect(entries('dead_lettered')).toBe(bad);
    for (const o of ['deduped', 'reclaimed', 'redelivered', 'fenced'])
      expect(entries(o), o).toBe(0);
    expect(m.value('streambed_end_to_end_seconds_count', { model: 'tiny' })).toBe(1000);
    // One text per valid page went through the threads; blank ones never reached them.
    expect(m.value('streambed_batch_texts_sum', { model: 'tiny' })).toBe(1000 - bad);
    const batches = m.value('streambed_batch_texts_count', { model: 'tiny' });
    expect(m.value('streambed_batch_duration_seconds_count', { model: 'tiny' })).toBe(batches);
    expect(m.value('streambed_batch_tokens_count', { model: 'tiny' })).toBe(batches);

    // The same events feed the log: one line per dead letter, one debug line per batch.
    const dead = logged.filter((l) => String(l.msg).includes('dead-lettered'));
    expect(dead).toHaveLength(bad);
    for (const l of dead) {
      expect(l).toMatchObject({ level: 30, model: 'tiny', stream, code: 'invalid', deliveries: 1 });
      expect(l.latencyMs).toEqual(expect.any(Number));
      expect(JSON.stringify(l)).not.toContain('   ');
    }
    expect(logged.filter((l) => l.msg === 'batch computed')).toHaveLength(batches!);

    // Fleet gauges come from Redis (cached for 1 s): wait for a read after the last answer.
    const f = await until('fleet gauges caught up', async () => {
      const e = await scrape();
      return e.value('streambed_dlq_length', { model: 'tiny' }) === bad &&
        e.value('streambed_source_entries', { source: 'alpha', state: 'done' }) ===
          sent.alpha!.total - sent.alpha!.bad
        ? e
        : undefined;
    });
    for (const source of ALLOWED) {
      const want = sent[source]!;
      const v = (state: string) => f.value('streambed_source_entries', { source, state });
      expect(v('submitted'), source).toBe(want.total);
      expect(v('done'), source).toBe(want.total - want.bad);
      expect(v('failed'), source).toBe(want.bad);
      expect(v('deduped'), source).toBe(0);
      const last = Number((await redis.hget(k.progress(source), 'last_done_ms')) ?? 0);
      expect(f.value('streambed_source_last_done_timestamp_seconds', { source })).toBe(last / 1000);
    }
    expect(f.samples.some((s) => s.labels.source === 'gamma')).toBe(false);
    const lane = (lane: string) => ({ model: 'tiny', lane });
    expect(f.value('streambed_stream_length', lane('interactive'))).toBe(1000);
    expect(f.value('streambed_stream_length', lane('bulk'))).toBe(0);
    expect(f.value('streambed_stream_lag', lane('interactive'))).toBe(0);
    expect(f.value('streambed_stream_pending', lane('interactive'))).toBe(0);
    expect(f.value('streambed_stream_entries_read', lane('interactive'))).toBe(1000);
    expect(f.value('streambed_stream_consumers', lane('interactive'))).toBe(1);
    expect(f.value('streambed_stream_oldest_pending_age_seconds', lane('interactive'))).toBe(0);
    expect(f.value('streambed_fleet_stats_up', {})).toBe(1);
  });

  it('serves valid Prometheus text with every documented metric', async () => {
    const e = await scrape();
    const documented = fs.readFileSync(
      new URL('../docs/observability.md', import.meta.url),
      'utf8',
    );
    const named = new Set(documented.match(/\bstreambed_[a-z_]+\b/g));
    for (const name of named) {
      expect(e.families.has(name) || e.hasSeries(name), `${name} (docs) on /metrics`).toBe(true);
    }
    const required = [
      'streambed_entries_total',
      'streambed_batch_duration_seconds',
      'streambed_batch_texts',
      'streambed_batch_tokens',
      'streambed_end_to_end_seconds',
      'streambed_batches_in_flight',
      'streambed_pool_utilization',
      'streambed_pool_queue',
      'streambed_stream_length',
      'streambed_stream_lag',
      'streambed_stream_pending',
      'streambed_stream_oldest_pending_age_seconds',
      'streambed_stream_consumers',
      'streambed_dlq_length',
      'streambed_model_load_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ];
    for (const name of required) expect(e.families.has(name), name).toBe(true);
    expect(e.families.get('streambed_entries_total')?.type).toBe('counter');
    expect(e.families.get('streambed_end_to_end_seconds')?.type).toBe('histogram');
    expect(e.families.get('streambed_stream_lag')?.type).toBe('gauge');
    expect(e.value('streambed_model_load_seconds', { model: 'tiny' })).toBeGreaterThan(0);
    expect(e.value('streambed_ready', {})).toBe(1);
    expect(e.value('streambed_pool_threads', {})).toBe(2);
  });

  it('has a Grafana dashboard that queries only metrics /metrics serves (the gateway row: its /metrics)', async () => {
    const e = await scrape();
    const gateway = await gatewayMetrics().registry.metrics();
    const dir = new URL('../deploy/grafana/', import.meta.url);
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const dashboard = JSON.parse(fs.readFileSync(new URL(file, dir), 'utf8')) as {
        panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
      };
      const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
      expect(exprs.length).toBeGreaterThan(10);
      for (const expr of exprs) {
        for (const name of expr.match(/\b(?:streambed|process|nodejs)_[a-z_]+\b/g) ?? []) {
          const family = name.replace(/_(bucket|sum|count)$/, '');
          const served = name.startsWith('streambed_gateway_')
            ? gateway.includes(`# TYPE ${family} `)
            : e.hasSeries(name) || e.families.has(name);
          expect(served, `${file}: ${name}`).toBe(true);
        }
      }
    }
  });

  it('reads METRICS_SOURCES as a strict allow list', () => {
    expect(loadConfig({}).metricsSources).toEqual([]);
    expect(loadConfig({ METRICS_SOURCES: 'alpha,beta.v2,alpha' }).metricsSources).toEqual([
      'alpha',
      'beta.v2',
    ]);
    expect(() => loadConfig({ METRICS_SOURCES: 'alpha,,beta' })).toThrow(/METRICS_SOURCES/);
    expect(() => loadConfig({ METRICS_SOURCES: 'bad source' })).toThrow(/METRICS_SOURCES/);
  });
});
