/**
 * BATCH_TIMEOUT_MS with real ONNX Runtime (the generated MiniLM-shaped
 * model), where terminating a thread mid-run used to abort the whole process
 * (`terminate called after throwing an instance of 'Napi::Error'`): batches
 * that run past it, and a worker frozen (SIGSTOP) past it, leave the process
 * alive and every entry answered once, computed once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { minilmModel } from './helpers/models.js';
import { computations, computeLogFile } from './helpers/observe.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const redis = redisClient();
const children: ChildWorker[] = [];
const prefixes: string[] = [];
let modelDir: string;

beforeAll(async () => {
  modelDir = (await minilmModel()).dir;
}, 120_000);
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGCONT');
    c.proc.kill('SIGKILL');
    await c.exited;
  }
});
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

const words = 'stream lease batch vector model token queue worker'.split(' ');
const page = (i: number) => ({
  id: `p${i}`,
  source: 's',
  text: `${i} ` + Array.from({ length: 80 }, (_, j) => words[(i * 3 + j) % words.length]).join(' '),
});

async function run(
  tag: string,
  env: Record<string, string | number>,
  during?: (w: ChildWorker, prefix: string) => Promise<void>,
) {
  const prefix = randomPrefix(tag);
  prefixes.push(prefix);
  const k = keys(prefix);
  const log = computeLogFile(tag);
  const worker = spawnWorker(prefix, {
    MODELS: `mini=${modelDir};dtype=fp32`,
    LOG_LEVEL: 'info',
    SB_COMPUTE_LOG: log,
    ...env,
  });
  children.push(worker);
  await until(
    'worker reading',
    () => worker.output().includes('worker reading') || undefined,
    90_000,
  );
  const client = new StreambedClient({ redis, prefix });
  const n = 200;
  await client.submit(
    Array.from({ length: n }, (_, i) => page(i)),
    { model: 'mini' },
  );
  await client.close();
  await during?.(worker, prefix);
  const all = await until(
    `${n} results`,
    async () => {
      const entries = (await redis.xrangeBuffer(k.results(), '-', '+')) as Array<
        [Buffer, Buffer[]]
      >;
      return entries.length >= n
        ? entries.map(([id, f]) => decodeResult(id.toString(), f))
        : undefined;
    },
    120_000,
    200,
  );
  return { worker, all, n, computed: computations(log), dlq: await redis.xlen(k.dlq('mini')) };
}

describe('BATCH_TIMEOUT_MS with ONNX Runtime', () => {
  it('batches running past it: the process lives, each entry answered once and computed once', async () => {
    // 48 texts of ~90 tokens in fp32: several hundred ms a batch, against a 200 ms timeout.
    const r = await run('ort-timeout', {
      BATCH_TIMEOUT_MS: 200,
      BATCH_SIZE: 48,
      MAX_BATCH_TOKENS: 8192,
      THREADS: 1,
    });
    console.log(
      `ORT past BATCH_TIMEOUT_MS: ${r.all.length} answered, ${r.computed.total} computations, dlq ${r.dlq}`,
    );
    expect(r.worker.proc.exitCode).toBeNull();
    expect(r.worker.output()).not.toContain('Napi::Error');
    expect(r.worker.output()).toContain(
      'batch still running in ONNX Runtime past BATCH_TIMEOUT_MS',
    );
    expect(r.all).toHaveLength(r.n);
    expect(new Set(r.all.map((x) => x.rid)).size).toBe(r.n);
    expect(r.all.filter((x) => x.status !== 'ok')).toEqual([]);
    expect(r.dlq).toBe(0);
    expect(r.computed.repeats).toBe(0);
  }, 180_000);

  it('a worker frozen (SIGSTOP) past it and resumed: the process lives, each entry answered once', async () => {
    const r = await run(
      'ort-freeze',
      {
        BATCH_TIMEOUT_MS: 1_000,
        BATCH_SIZE: 32,
        MAX_BATCH_TOKENS: 8192,
        THREADS: 1,
        CLAIM_IDLE_MS: 60_000,
      },
      async (w) => {
        await until('computing', () => w.output().includes('worker reading') || undefined);
        await new Promise((res) => setTimeout(res, 500));
        w.proc.kill('SIGSTOP');
        await new Promise((res) => setTimeout(res, 3_000));
        w.proc.kill('SIGCONT');
      },
    );
    console.log(`ORT frozen 3 s: ${r.all.length} answered, ${r.computed.total} computations`);
    expect(r.worker.proc.exitCode).toBeNull();
    expect(r.worker.output()).not.toContain('Napi::Error');
    expect(r.all).toHaveLength(r.n);
    expect(new Set(r.all.map((x) => x.rid)).size).toBe(r.n);
    expect(r.all.filter((x) => x.status !== 'ok')).toEqual([]);
    expect(r.dlq).toBe(0);
  }, 180_000);

  it('a forced stop (second SIGTERM) with ONNX Runtime mid-batch: exit 130, entries handed back, a second worker answers each once', async () => {
    let leaver: ChildWorker | undefined;
    const r = await run(
      'ort-force',
      {
        BATCH_SIZE: 48,
        MAX_BATCH_TOKENS: 8192,
        THREADS: 1,
        CLAIM_IDLE_MS: 60_000,
        CLAIM_INTERVAL_MS: 500,
      },
      async (w, prefix) => {
        leaver = w;
        await new Promise((res) => setTimeout(res, 700));
        w.proc.kill('SIGTERM');
        await new Promise((res) => setTimeout(res, 100));
        w.proc.kill('SIGTERM');
        expect(await w.exited).toBe(130);
        const stayer = spawnWorker(prefix, {
          MODELS: `mini=${modelDir};dtype=fp32`,
          CLAIM_IDLE_MS: 60_000,
          CLAIM_INTERVAL_MS: 500,
        });
        children.push(stayer);
      },
    );
    console.log(`ORT forced stop: ${r.all.length} answered once each after a hand-back`);
    // Not the native abort of a thread terminated inside ONNX Runtime.
    expect(leaver?.output()).not.toContain('Napi::Error');
    expect(leaver?.output()).toContain('handed back');
    expect(r.all).toHaveLength(r.n);
    expect(new Set(r.all.map((x) => x.rid)).size).toBe(r.n);
    expect(r.all.filter((x) => x.status !== 'ok')).toEqual([]);
    expect(r.dlq).toBe(0);
  }, 180_000);
});
