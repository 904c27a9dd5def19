/**
 * Issue 21, live workers and jobs in `streambed status` (run as the real
 * CLI): a small backfill served by a fixture worker shows in the per-job
 * view with exact numbers, done and failed apart and no ETA once finished;
 * a healthy fleet passes `--check`; once its worker stops, the consumer is
 * dead, not counted as live, and new work fails `--check`; `--watch | head`
 * ends quietly.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import type { StatusReport } from '../src/status/report.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { BIN, startTestWorker, stopAllWorkers, stopTestWorker } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('status-live');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-status-live-'));
const PAGES = 40;
/** Pages whose text makes the fixture core throw: answered with an error. */
const POISONED = new Set([3, 17, 29]);
let worker: WorkerHandle;

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

async function report(args: string[]): Promise<StatusReport> {
  const r = await cli(['status', '--json', '--models', 'fx', ...args]);
  expect(r.err).toBe('');
  return JSON.parse(r.out) as StatusReport;
}

beforeAll(async () => {
  worker = await startTestWorker(prefix, { MODELS: 'fx=fixture:8', THREADS: 1 });
});

afterAll(async () => {
  await stopAllWorkers();
  await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('status of jobs and live consumers', () => {
  it('shows a finished backfill job exactly, then a stopped worker as dead', async () => {
    const corpus = path.join(dir, 'pages.jsonl');
    const lines = Array.from({ length: PAGES }, (_, i) =>
      JSON.stringify({ id: `p${i}`, text: POISONED.has(i) ? `page ${i} @@throw` : `page ${i}` }),
    );
    fs.writeFileSync(corpus, `${lines.join('\n')}\n`);
    const run = await cli(['backfill', corpus, '-m', 'fx', '--job', 'j1', '--source', 'lv', '-w']);
    expect(run.code, run.err).toBe(1); // dead-lettered pages make --wait exit 1

    const live = await report(['--sample-ms', '200']);
    expect(live.jobs).toHaveLength(1);
    const job = live.jobs[0]!;
    expect(job).toMatchObject({
      job: 'j1',
      submitted: PAGES,
      answered: PAGES,
      failed: POISONED.size,
      ok: PAGES - POISONED.size,
      remaining: 0,
      percent: 100,
      etaSec: null,
      state: 'done',
    });
    expect(job.startedMs).not.toBeNull();
    expect(job.finishedMs).toBe(job.lastAnswerMs);
    expect(job.finishedMs!).toBeGreaterThanOrEqual(job.startedMs!);
    const source = live.sources.find((s) => s.source === 'lv')!;
    expect(source).toMatchObject({ done: PAGES - POISONED.size, failed: POISONED.size });
    expect(source.etaSec).toBeNull();
    const m = live.models[0]!;
    expect(m.liveConsumers).toBe(1);
    expect(m.consumers.map((c) => [c.name, c.state])).toEqual([[worker.consumer, 'live']]);

    // Healthy: a live worker and nothing waiting (the DLQ check is off by default).
    const healthy = await cli(['status', '--check', '--models', 'fx']);
    expect(healthy.code, healthy.out).toBe(0);
    const text = await cli(['status', '--sample-ms', '0', '--models', 'fx']);
    expect(text.out).toMatch(/^j1 +40 +40 +3 +100\.0 +- +- +\S+ +done$/m);
    expect(text.out).toMatch(/^lv +37 +3 +40 +100\.0 +- +- +\S+ +done$/m);

    // Healthy with work in flight: the worker holds slow entries and is live.
    const client = new StreambedClient({ redis, prefix });
    try {
      await client.submit(
        Array.from({ length: 3 }, (_, i) => ({
          id: `slow${i}`,
          source: 'sl',
          text: '@@slow:1500',
        })),
        { model: 'fx' },
      );
      await until('slow entries held', async () => {
        const r = await report(['--sample-ms', '0']);
        return r.models[0]!.backlog > 0 && r.models[0]!.lanes[0]!.pending > 0;
      });
      const busy = await cli(['status', '--check', '--models', 'fx', '--live-ms', '1000']);
      expect(busy.code, busy.out).toBe(0);
      await until('slow entries answered', async () => (await report([])).models[0]!.backlog === 0);

      // A clean stop leaves the consumer's name in the group: it must not count as live.
      await stopTestWorker(worker);
      await new Promise((r) => setTimeout(r, 600));
      await client.submit(
        Array.from({ length: 5 }, (_, i) => ({ id: `late${i}`, source: 'lv', text: 'x' })),
        { model: 'fx' },
      );
    } finally {
      await client.close();
    }
    const dead = await report(['--sample-ms', '0', '--live-ms', '500', '--check']);
    expect(dead.models[0]).toMatchObject({ liveConsumers: 0, backlog: 5 });
    expect(dead.models[0]!.consumers.map((c) => [c.name, c.state])).toEqual([
      [worker.consumer, 'dead'],
    ]);
    expect(dead.breaches.map((b) => `${b.kind} ${b.subject}`)).toEqual(['no_live_consumer fx']);
    const check = await cli(['status', '--check', '--models', 'fx', '--live-ms', '500']);
    expect(check.code).toBe(1);
    expect(check.out).toMatch(/ {2}\S+ +dead +0 /);
    expect(check.out).toMatch(/^fx +\d+ +5 +0 +- +0\/1 /m);
  });

  it('status --watch | head ends quietly', async () => {
    const proc = spawn(
      'bash',
      [
        '-c',
        // pipefail: the exit code is status's own, not head's.
        `set -o pipefail; "${process.execPath}" "${BIN}" status --watch --interval-ms 50 | head -n 3`,
      ],
      { env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => proc.on('exit', r));
    expect(code).toBe(0);
    expect(err).toBe('');
  });
});
