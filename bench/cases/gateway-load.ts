/**
 * The gateway case: many concurrent clients, each sending one request after
 * the other (a closed loop), against one `streambed serve` and one worker
 * with the no-op core, so what is measured is the path (HTTP, JSON, Redis,
 * the reply router), not the model. The same load through the SDK's
 * `embed` (no HTTP) is the baseline the gateway is compared with.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, peakRssMb } from '../machine.js';
import { type Latency, latencyOf } from '../stats.js';

/** The CLI, from dist/bench/cases (npm run bench) or from bench/cases (the smoke test under vitest). */
const BIN = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/') ? '../../../bin/streambed.js' : '../../bin/streambed.js',
    import.meta.url,
  ),
);

export interface LoadResult {
  requests: number;
  /** Every request's latency, ms (dropped from the JSON record). */
  samples: number[];
  errors: number;
  /** The first few error messages (all errors are counted). */
  errorSamples: string[];
  seconds: number;
  perSecond: number;
  latency?: Latency;
}

/**
 * `clients` loops call `call` back to back for `seconds`; each call's time
 * is a latency sample. A failed call counts as an error and the loop goes on.
 */
export async function closedLoop(
  clients: number,
  seconds: number,
  call: (client: number, n: number) => Promise<void>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let n = 0; performance.now() < end; n++) {
        const t = performance.now();
        try {
          await call(c, n);
          latencies.push(performance.now() - t);
        } catch (err) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push((err as Error).message);
        }
      }
    }),
  );
  return summary(latencies, errors, errorSamples, (performance.now() - t0) / 1000);
}

/**
 * Requests sent at a fixed rate for `seconds`, whatever the answers do (an
 * open loop: a slow path queues requests instead of slowing the senders
 * down). Latency at a load both paths can carry is what a caller feels;
 * a closed loop at saturation only measures queueing (Little's law).
 * Arrivals are evenly spaced, sent in ticks of `TICK_MS`; each latency
 * counts from when its request was due.
 */
export async function openLoop(
  perSecond: number,
  seconds: number,
  call: (n: number) => Promise<void>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  const total = Math.round(perSecond * seconds);
  for (let n = 0; n < total;) {
    const upTo = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * perSecond) + 1);
    for (; n < upTo; n++) {
      // From when it was due, not when it went: a late sender is part of the latency.
      const due = t0 + (n * 1000) / perSecond;
      pending.push(
        call(n).then(
          () => void latencies.push(performance.now() - due),
          (err: unknown) => {
            errors++;
            if (errorSamples.length < 5) errorSamples.push((err as Error).message);
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  await Promise.all(pending);
  return summary(latencies, errors, errorSamples, (performance.now() - t0) / 1000);
}

/** Open-loop send interval (requests due within it go together). */
const TICK_MS = 2;

/** Slices of the same path measured at different times, as one result. */
export function combine(slices: readonly LoadResult[]): LoadResult {
  return summary(
    slices.flatMap((s) => s.samples),
    slices.reduce((n, s) => n + s.errors, 0),
    slices.flatMap((s) => s.errorSamples).slice(0, 5),
    slices.reduce((t, s) => t + s.seconds, 0),
  );
}

function summary(samples: number[], errors: number, errorSamples: string[], seconds: number) {
  const latency = latencyOf(samples);
  return {
    requests: samples.length,
    samples,
    errors,
    errorSamples,
    seconds,
    perSecond: samples.length / seconds,
    ...(latency && { latency }),
  };
}

/** A `streambed` child process (or another script, `bin`), ready once its output matches a pattern. */
export class StreambedProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private output = '';

  constructor(command: string, env: Record<string, string>, execArgv: string[] = [], bin = BIN) {
    this.proc = spawn(process.execPath, [...execArgv, bin, command], {
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000));
    this.proc.stdout?.on('data', onData);
    this.proc.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  /** Resolves with the regex's first group once the log matches it; fails if the process exits. */
  async ready(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
      const m = pattern.exec(this.output);
      if (m) return m[1] ?? m[0];
      if (this.proc.exitCode !== null) throw new Error(`exited: ${this.output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`not ready within ${timeoutMs} ms: ${this.output.slice(-4000)}`);
  }

  cpuSeconds(): number | undefined {
    return cpuSeconds(this.proc.pid ?? -1);
  }

  peakRssMb(): number | undefined {
    return peakRssMb(this.proc.pid ?? -1);
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/**
 * One worker (model `bench`: the no-op core unless `modelRef` says otherwise)
 * and one gateway on a free port, under `prefix`; the gateway's `execArgv`
 * e.g. `--cpu-prof` to profile it, and `keysFile` its GATEWAY_KEYS_FILE
 * (authentication and rate limits measured too), `bin` another checkout's
 * bin/streambed.js (a gateway at another commit).
 */
export async function startGatewayFleet(
  redisUrl: string,
  prefix: string,
  gateway: { execArgv?: string[]; keysFile?: string; bin?: string; modelRef?: string } = {},
): Promise<{ worker: StreambedProcess; gateway: StreambedProcess; port: number }> {
  const common = { REDIS_URL: redisUrl, KEY_PREFIX: prefix, METRICS_PORT: '0' };
  const worker = new StreambedProcess('worker', {
    ...common,
    MODELS: `bench=${gateway.modelRef ?? 'noop:384'}`,
    ALLOW_REMOTE_MODELS: 'false',
    // Repeated texts must be computed, not answered from a cache.
    DEDUPE_TTL_S: '0',
  });
  const serve = new StreambedProcess(
    'serve',
    {
      ...common,
      MODELS: 'bench',
      GATEWAY_PORT: '0',
      // The load is the point: never refuse it for backlog.
      GATEWAY_MAX_BACKLOG: '1000000',
      ...(gateway.keysFile && { GATEWAY_KEYS_FILE: gateway.keysFile }),
    },
    gateway.execArgv,
    gateway.bin,
  );
  await worker.ready(/"msg":"worker reading"/);
  const port = Number(await serve.ready(/"port":(\d+),[^\n]*"msg":"gateway listening"/));
  return { worker, gateway: serve, port };
}

/**
 * POST /v1/embeddings over keep-alive node:http, decoding the base64 vector:
 * what the openai client does, at a fraction of its CPU, so on a shared
 * machine the load generator is not what is measured.
 */
export function rawEmbedder(port: number, clients: number, apiKey?: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  return (model: string, input: string): Promise<Float32Array> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ model, input, encoding_format: 'base64' });
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/embeddings',
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': body.length,
            ...(apiKey && { authorization: `Bearer ${apiKey}` }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200) return reject(new Error(`${res.statusCode}: ${text}`));
            const b = Buffer.from(
              (JSON.parse(text) as { data: Array<{ embedding: string }> }).data[0]!.embedding,
              'base64',
            );
            resolve(new Float32Array(b.buffer, b.byteOffset, b.length / 4));
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

/**
 * The bare Node HTTP server of bench/http-floor.ts on a free port: the same
 * load against it says what Node's HTTP alone costs at that rate.
 */
export async function startHttpFloor(): Promise<{ floor: StreambedProcess; port: number }> {
  const floor = new StreambedProcess(
    'floor',
    {},
    [],
    fileURLToPath(new URL('../http-floor.js', import.meta.url)),
  );
  return { floor, port: Number(await floor.ready(/"port":(\d+)/)) };
}
