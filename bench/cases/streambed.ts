/**
 * Case d (streambed end to end) and the streambed half of e (no-op core):
 * a real `streambed worker` child process with the defaults for threads,
 * batching and in-flight work; the runner submits envelopes with the SDK
 * and reads the results back from a reply stream.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import type { Redis } from 'ioredis';

import { StreambedClient } from '../../src/client/client.js';
import type { Corpus } from '../corpus.js';
import { cpuSeconds, peakRssMb, threadCpuSeconds } from '../machine.js';
import { latencyOf, round } from '../stats.js';
import { collectResults, deletePrefix } from './redis-util.js';
import type { CaseDriver, Measurement } from './types.js';

const BIN = fileURLToPath(new URL('../../../bin/streambed.js', import.meta.url));
const MODEL = 'bench';
/** A run fails when no result arrives for this long. */
const STALL_MS = 60_000;

export interface StreambedCaseOptions {
  /** MODELS value for the child, `bench=<dir>;dtype=q8` or `bench=noop:384`. */
  modelRef: string;
  noop: boolean;
  /** Extra env for the child (e.g. NODE_OPTIONS=--cpu-prof for profiling). */
  env?: Record<string, string>;
}

export class StreambedCase implements CaseDriver {
  readonly id: string;
  readonly label: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private client: StreambedClient | undefined;
  private readonly replyTo: string;
  private output = '';
  private runs = 0;

  constructor(
    private readonly redis: Redis,
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly options: StreambedCaseOptions,
  ) {
    this.id = options.noop ? 'e:streambed' : 'd';
    this.label = options.noop
      ? 'e. streambed no-op core, full path'
      : 'd. streambed end to end (worker process, defaults)';
    this.replyTo = `${prefix}:reply:bench/bench`;
  }

  async start(warmup: readonly string[]): Promise<void> {
    const proc = spawn(process.execPath, [BIN, 'worker'], {
      env: {
        ...process.env,
        REDIS_URL: this.redisUrl,
        KEY_PREFIX: this.prefix,
        MODELS: `${MODEL}=${this.options.modelRef}`,
        METRICS_PORT: '0',
        LOG_LEVEL: 'info',
        ALLOW_REMOTE_MODELS: 'false',
        // Case e repeats texts: every entry must be computed, never answered from a cache.
        DEDUPE_TTL_S: '0',
        ...this.options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
    const reading = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        this.output = (this.output + d.toString()).slice(-20_000);
        if (this.output.includes('"msg":"worker reading"')) resolve();
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      void this.exited?.then((code) =>
        reject(new Error(`worker exited (${code}): ${this.output}`)),
      );
    });
    await reading;
    this.client = new StreambedClient({ redis: this.redis, prefix: this.prefix });
    await this.pass(warmup, 'warm');
  }

  async run(corpus: Corpus): Promise<Measurement> {
    const pid = this.proc?.pid ?? -1;
    const cpu0 = cpuSeconds(pid);
    const threads0 = threadCpuSeconds(pid);
    const m = await this.pass(corpus.texts, `${corpus.name}-${++this.runs}`);
    const cpu1 = cpuSeconds(pid);
    const split = cpuSplit(pid, threads0, threadCpuSeconds(pid), this.computeThreads());
    return {
      ...m,
      ...(cpu0 !== undefined && cpu1 !== undefined && { cpuSeconds: round(cpu1 - cpu0, 2) }),
      ...(split && { detail: { ...m.detail, cpuSplit: split } }),
    };
  }

  /** THREADS of the worker, from its start line. */
  private computeThreads(): number {
    return Number(/"threads":(\d+)[^\n]*"msg":"worker starting"/.exec(this.output)?.[1] ?? 0);
  }

  private async pass(texts: readonly string[], tag: string): Promise<Measurement> {
    const client = this.client as StreambedClient;
    const reader = this.redis.duplicate();
    try {
      const started = performance.now();
      const rids: string[] = [];
      for (let start = 0; start < texts.length; start += 1000) {
        const pages = texts
          .slice(start, start + 1000)
          .map((text, k) => ({ id: `${tag}-${start + k}`, source: 'bench', text }));
        rids.push(...(await client.submit(pages, { model: MODEL, replyTo: this.replyTo })));
      }
      const got = await collectResults(reader, this.replyTo, new Set(rids), {
        stallMs: STALL_MS,
        dead: () =>
          this.proc?.exitCode !== null || this.proc?.signalCode
            ? `the worker exited (${this.proc?.exitCode ?? this.proc?.signalCode}); its log ends:\n${this.output.slice(-4000)}`
            : undefined,
      });
      const seconds = (got.doneAt - started) / 1000;
      const latency = latencyOf(got.latenciesMs);
      const notOk = Object.entries(got.statuses).filter(([s]) => s !== 'ok');
      return {
        texts: texts.length,
        seconds,
        perSecond: texts.length / seconds,
        ...(latency && { latency }),
        ...(notOk.length > 0 && { detail: { statuses: got.statuses } }),
      };
    } finally {
      reader.disconnect();
      await this.redis.del(this.replyTo, this.client?.keys.progress('bench') ?? '');
      await this.redis.xtrim(this.client?.keys.request(MODEL) ?? '', 'MAXLEN', 0);
    }
  }

  pids(): number[] {
    return this.proc?.pid ? [this.proc.pid] : [];
  }

  async stop(): Promise<{ peakRssMb?: number }> {
    const peak = peakRssMb(this.proc?.pid ?? -1);
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
    await this.client?.close();
    await deletePrefix(this.redis, this.prefix);
    return { ...(peak !== undefined && { peakRssMb: peak }) };
  }

  /** The worker's log so far (for profiling notes and failures). */
  log(): string {
    return this.output;
  }
}

/**
 * Where the worker's CPU went during a run: its main thread (reading,
 * decoding, tokenising, packing, writing), its compute threads (ONNX Runtime
 * and what runs around it: tensors, pooling, messages) and the rest (V8's
 * GC and compiler helpers, libuv). The compute threads are the `threads`
 * busiest threads besides the main one: with a model loaded they are busy
 * for most of a run, the helpers for a few percent.
 */
function cpuSplit(
  pid: number,
  before: Map<number, number>,
  after: Map<number, number>,
  threads: number,
): { main: number; compute: number; other: number } | undefined {
  if (after.size === 0 || threads <= 0) return undefined;
  const used = [...after].map(([tid, s]) => ({ tid, s: s - (before.get(tid) ?? 0) }));
  const main = used.find((u) => u.tid === pid)?.s ?? 0;
  const rest = used.filter((u) => u.tid !== pid).sort((x, y) => y.s - x.s);
  const sum = (xs: Array<{ s: number }>) => xs.reduce((n, u) => n + u.s, 0);
  return {
    main: round(main, 2),
    compute: round(sum(rest.slice(0, threads)), 2),
    other: round(sum(rest.slice(threads)), 2),
  };
}
