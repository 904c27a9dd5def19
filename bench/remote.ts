/**
 * `node dist/bench/remote.js [--texts N] [--rpm R] [--latency-ms L]`: a remote
 * model against the stand-in provider (bench/stand-in-provider.ts, fixed
 * latency per request, maxInputs 64) on loopback.
 *
 * Reports streambed's texts/s (one worker process, first submit to last
 * result) against its ceiling, min(rpm x maxInputs / 60, capacity) with
 * capacity = concurrency x maxInputs / latency, and against a naive loop
 * that sends one request per text (waiting for each, spaced to the same rpm),
 * measured in the same run; and the worker's CPU per entry. What the
 * stand-in does not model (real tokenisation, the provider's own limiter,
 * network latency variance) is in its header.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

import { StreambedClient } from '../src/client/client.js';
import { cpuSeconds } from './machine.js';
import { startFakeProvider } from './stand-in-provider.js';
import { round } from './stats.js';

const BIN = fileURLToPath(new URL('../../bin/streambed.js', import.meta.url));
const MAX_INPUTS = 64;
const CONCURRENCY = 4;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      texts: { type: 'string', default: '10000' },
      rpm: { type: 'string', default: '600' },
      'latency-ms': { type: 'string', default: '50' },
      'naive-texts': { type: 'string', default: '100' },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    },
  });
  const n = Number(values.texts);
  const rpm = Number(values.rpm);
  const latencyMs = Number(values['latency-ms']);
  const provider = await startFakeProvider({ dim: 256, maxInputs: MAX_INPUTS, latencyMs });
  const texts = Array.from({ length: n }, (_, i) => `bench text ${i} ${'word '.repeat(i % 50)}`);

  // Naive: one request per text, each awaited, spaced to the same rpm.
  const naiveN = Math.min(n, Number(values['naive-texts']));
  const spacing = 60_000 / rpm;
  let t0 = performance.now();
  for (let i = 0; i < naiveN; i++) {
    const sent = performance.now();
    const res = await fetch(`${provider.baseUrl}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'naive', input: [texts[i]], encoding_format: 'base64' }),
    });
    await res.arrayBuffer();
    const wait = spacing - (performance.now() - sent);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const naiveRate = naiveN / ((performance.now() - t0) / 1000);

  // streambed: one worker process, the whole set through the request stream.
  const prefix = `sbbench-remote-${randomBytes(3).toString('hex')}`;
  const redis = new Redis(values['redis-url'], { maxRetriesPerRequest: 3 });
  const client = new StreambedClient({ redis, prefix });
  const reply = `${prefix}:reply:bench/bench`;
  const worker = spawnWorker(prefix, values['redis-url'], provider.baseUrl, rpm);
  // The probe request at load: the worker is ready once the provider has seen it.
  while (provider.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
  const before = provider.requests.length;
  const cpu0 = cpuSeconds(worker.pid as number) ?? 0;
  t0 = performance.now();
  await client.submit(
    texts.map((text, i) => ({ id: `t${i}`, source: 'bench', text })),
    { model: 'remote', replyTo: reply },
  );
  while ((await redis.xlen(reply)) < n) await new Promise((r) => setTimeout(r, 50));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (cpuSeconds(worker.pid as number) ?? 0) - cpu0;
  const requests = provider.requests.length - before;

  const burst = Math.ceil(rpm / 60);
  // The fleet limiter's sustained rate (rate-limit-script.ts) plus its one burst over the run.
  const rateCeiling = (((rpm - burst) / 60) * seconds + burst) * (MAX_INPUTS / seconds);
  const capacity = (CONCURRENCY * MAX_INPUTS) / (latencyMs / 1000);
  const ceiling = Math.min((rpm * MAX_INPUTS) / 60, capacity);
  const rate = n / seconds;
  console.log(
    JSON.stringify(
      {
        texts: n,
        rpm,
        latencyMs,
        maxInputs: MAX_INPUTS,
        concurrency: CONCURRENCY,
        seconds: round(seconds, 2),
        requests,
        textsPerSec: round(rate, 1),
        ceilingTextsPerSec: round(ceiling, 1),
        ofCeiling: round(rate / ceiling, 3),
        ofLimiterRate: round(rate / rateCeiling, 3),
        naiveTextsPerSec: round(naiveRate, 1),
        overNaive: round(rate / naiveRate, 1),
        workerCpuMsPerEntry: round((cpu * 1000) / n, 3),
      },
      null,
      2,
    ),
  );
  worker.kill('SIGTERM');
  await new Promise((r) => worker.once('exit', r));
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await client.close();
  redis.disconnect();
  await provider.close();
}

function spawnWorker(prefix: string, redisUrl: string, baseUrl: string, rpm: number): ChildProcess {
  return spawn(process.execPath, [BIN, 'worker'], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      KEY_PREFIX: prefix,
      METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
      MODELS: `remote=openai:bench;baseUrl=${baseUrl};rpm=${rpm};maxInputs=${MAX_INPUTS};concurrency=${CONCURRENCY}`,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

await main();
