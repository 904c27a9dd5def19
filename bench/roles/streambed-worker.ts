/**
 * Profiling role: the same worker `streambed worker` runs (startWorker with
 * config from the environment), in this process so its events can be
 * counted: micro-batch sizes, padding, time inside the threads (when each
 * batch ran), and how busy the main thread's event loop was. Nothing is
 * sampled while measuring (worker.stats() computes piscina's utilisation from
 * a histogram summary, ~1 ms a call, which would itself load the main thread).
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker-process.js';
import { serveRole } from '../child.js';

export interface WorkerInit {
  env: Record<string, string>;
}

export interface BatchRecord {
  texts: number;
  tokens: number;
  paddedTokens: number;
  ms: number;
  /** ms since `begin` when the batch came back to the main thread. */
  at: number;
}

export interface WorkerWindow {
  seconds: number;
  threads: number;
  batches: BatchRecord[];
  /** Event-loop utilisation of the main thread over the window (0..1). */
  mainElu: number;
  /** CPU time of the main thread over the window / wall time (from /proc; undefined elsewhere). */
  mainCpu?: number;
  poolUtilizationLifetime: number;
  answered: number;
  /** The window in CLOCK_MONOTONIC microseconds (the clock of .cpuprofile timestamps). */
  window: [number, number];
}

let worker: WorkerHandle | undefined;
let batches: BatchRecord[] = [];
let answered = 0;
let t0 = 0;
let cpu0: number | undefined;
let us0 = 0;
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
let elu0 = performance.eventLoopUtilization();

/** The main thread's own CPU seconds: its task (tid = pid) in /proc. */
function mainThreadCpuSeconds(): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

serveRole(
  {
    async init(arg) {
      const { env } = arg as WorkerInit;
      const config = loadConfig({ ...process.env, ...env });
      worker = startWorker(config, { log: createLogger(config.logLevel) });
      worker.events.on('batch', (b) => {
        if (t0 > 0) batches.push({ ...b, at: performance.now() - t0 });
      });
      worker.events.on('answered', () => answered++);
      await worker.started;
      return { threads: worker.stats().threads, consumer: worker.consumer };
    },
    begin() {
      batches = [];
      answered = 0;
      t0 = performance.now();
      us0 = monotonicUs();
      cpu0 = mainThreadCpuSeconds();
      elu0 = performance.eventLoopUtilization();
      return {};
    },
    end(): WorkerWindow {
      const w = worker as WorkerHandle;
      const threads = w.stats().threads;
      const elu = performance.eventLoopUtilization(elu0);
      const cpu1 = mainThreadCpuSeconds();
      const seconds = (performance.now() - t0) / 1000;
      const out: WorkerWindow = {
        seconds,
        ...(cpu0 !== undefined && cpu1 !== undefined && { mainCpu: (cpu1 - cpu0) / seconds }),
        threads,
        batches,
        mainElu: elu.utilization,
        poolUtilizationLifetime: w.stats().poolUtilization,
        answered,
        window: [us0, monotonicUs()],
      };
      t0 = 0;
      return out;
    },
  },
  async () => {
    await worker?.stop();
  },
);
