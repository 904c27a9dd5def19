/**
 * Smoke test of the benchmark harness: its pieces run on a few entries of the
 * tiny model. No timings are asserted (benchmarks are never timed tests).
 */
import { afterAll, describe, expect, it } from 'vitest';

import { ComputeLimitCase } from '../bench/cases/compute-limit.js';
import {
  closedLoop,
  combine,
  openLoop,
  rawEmbedder,
  startGatewayFleet,
} from '../bench/cases/gateway-load.js';
import type { RunRecord } from '../bench/cases/types.js';
import { generateCorpus, loadTokenizer } from '../bench/corpus.js';
import { machineFacts } from '../bench/machine.js';
import { parseOptions } from '../bench/options.js';
import { summarise } from '../bench/report.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient } from './helpers/redis.js';

describe('bench harness', () => {
  const running: Array<{ stop(): Promise<unknown> }> = [];
  afterAll(async () => {
    await Promise.all(running.map((r) => r.stop()));
  });

  it('parses options strictly', () => {
    const o = parseOptions(['--quick', '--cases', 'd,a', '--dtype', 'fp32']);
    expect(o).toMatchObject({ quick: true, cases: ['a', 'd'], dtype: 'fp32', rounds: 1 });
    expect(parseOptions([]).rounds).toBe(2);
    expect(() => parseOptions(['--cases', 'z'])).toThrow(/--cases/);
    expect(() => parseOptions(['--bogus'])).toThrow();
  });

  it('builds corpora to the token lengths they claim, reproducibly', async () => {
    const model = await tinyModel();
    const tokenizer = await loadTokenizer(model.dir);
    for (const name of ['short', 'long', 'mixed'] as const) {
      const c = generateCorpus(name, 12, 3, tokenizer);
      expect(c.texts).toHaveLength(12);
      expect(c.stats.offTarget).toBe(0);
      const lengths = c.ids.map((t) => t.length);
      if (name === 'short') for (const n of lengths) expect(n).toBeGreaterThanOrEqual(12);
      if (name === 'long') for (const n of lengths) expect(n).toBeGreaterThanOrEqual(128);
      for (const n of lengths) expect(n).toBeLessThanOrEqual(512);
      expect(generateCorpus(name, 12, 3, tokenizer).texts).toEqual(c.texts);
    }
  });

  it('runs the raw ORT compute-limit case on a few texts', async () => {
    const model = await tinyModel();
    const tokenizer = await loadTokenizer(model.dir);
    const corpus = generateCorpus('short', 6, 1, tokenizer);
    const onnx = `${model.dir}/onnx/model_quantized.onnx`;
    const a = new ComputeLimitCase(onnx, 1, 1, corpus.ids.slice(0, 2), [
      { batchSize: 1, maxBatchTokens: 1 << 20 },
      { batchSize: 4, maxBatchTokens: 128 },
    ]);
    running.push(a);
    await a.start();
    const m = await a.run(corpus);
    expect(m.texts).toBe(6);
    expect(m.perSecond).toBeGreaterThan(0);
    expect(m.detail?.packings).toHaveLength(2);
    const raw = await a.runShapes([
      [2, 8],
      [1, 16],
    ]);
    expect(raw).toMatchObject({ texts: 3, batches: 2 });
  });

  it('drives the gateway case (closed-loop clients, no-op core) for a moment without errors', async () => {
    const prefix = randomPrefix('benchgw');
    const fleet = await startGatewayFleet(REDIS_URL, prefix);
    running.push(fleet.worker, fleet.gateway);
    const embed = rawEmbedder(fleet.port, 4);
    const r = await closedLoop(4, 1, async () => {
      expect(await embed('bench', 'some text')).toHaveLength(384);
    });
    expect(r).toMatchObject({ errors: 0, errorSamples: [] });
    expect(r.requests).toBeGreaterThan(0);
    expect(r.latency!.p99Ms).toBeGreaterThanOrEqual(r.latency!.p50Ms);
    expect(combine([r, r]).requests).toBe(2 * r.requests);
    // An open loop sends at its rate whatever the answers do: every request goes, in time.
    const sent: number[] = [];
    const open = await openLoop(100, 1, async (n) => {
      sent.push(n);
      expect(await embed('bench', 'some text')).toHaveLength(384);
    });
    expect(open).toMatchObject({ requests: 100, errors: 0 });
    expect(sent).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(open.seconds).toBeGreaterThanOrEqual(0.99);
    expect(fleet.gateway.peakRssMb()).toBeGreaterThan(0);
    expect(await fleet.gateway.stop()).toBe(0);
    const redis = redisClient();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('summarises records into the ratios the issue asks for', () => {
    const rec = (caseId: string, perSecond: number): RunRecord => ({
      round: 0,
      corpus: 'short',
      caseId,
      position: 0,
      loadavg1: 0,
      measurement: { texts: 100, seconds: 100 / perSecond, perSecond },
    });
    const options = parseOptions(['--quick', '--corpora', 'short']);
    const report = summarise({
      options,
      command: 'npm run bench -- --quick',
      machine: machineFacts('7'),
      code: { commit: 'abc', dirty: [] },
      model: { dir: '/m', dtype: 'q8', file: 'model_quantized.onnx' },
      corpora: [],
      drivers: ['a:2x1', 'a:1x2', 'b', 'c', 'd', 'e:streambed', 'e:bullmq'].map((id) => ({
        id,
        label: id,
      })),
      records: [
        rec('a:2x1', 100),
        rec('a:1x2', 80),
        rec('b', 40),
        rec('c', 50),
        rec('d', 95),
        rec('e:streambed', 3000),
        rec('e:bullmq', 1000),
      ],
      peakRss: {},
      startedAt: new Date().toISOString(),
      seconds: 1,
      nproc: 2,
    });
    expect(report.limit.short).toMatchObject({ perSecond: 100, layout: 'a:2x1' });
    expect(report.ratios.short).toMatchObject({
      'd/a': { value: 0.95, met: true },
      'd/b': { value: 2.38, met: true },
      'd/c': { value: 1.9, met: true },
      'e streambed/BullMQ': { value: 3, met: true },
    });
  });

  it("splits d's CPU per text into compute threads, main thread and the rest", () => {
    const rec = (caseId: string, cpuSeconds: number, detail?: Record<string, unknown>) => ({
      round: 0,
      corpus: 'short' as const,
      caseId,
      position: 0,
      loadavg1: 0,
      measurement: {
        texts: 1000,
        seconds: 1,
        perSecond: 1000,
        cpuSeconds,
        ...(detail && { detail }),
      },
    });
    const report = summarise({
      options: parseOptions(['--quick', '--corpora', 'short']),
      command: 'npm run bench -- --quick',
      machine: machineFacts('7'),
      code: { commit: 'abc', dirty: [] },
      model: { dir: '/m', dtype: 'q8', file: 'model_quantized.onnx' },
      corpora: [],
      drivers: [
        { id: 'a:2x1', label: 'a' },
        { id: 'd', label: 'd' },
      ],
      records: [
        rec('a:2x1', 0.9),
        rec('d', 1.5, { cpuSplit: { main: 0.3, compute: 1.0, other: 0.2 } }),
      ],
      peakRss: {},
      startedAt: new Date().toISOString(),
      seconds: 1,
      nproc: 2,
    });
    expect(report.ratios.short).toMatchObject({
      'a/d CPU ms per text': { value: 0.6 },
      'a/d CPU, d compute threads only': { value: 0.9 },
      'd CPU ms per text: main thread': { value: 0.3 },
      'd CPU ms per text: other threads': { value: 0.2 },
    });
  });
});
