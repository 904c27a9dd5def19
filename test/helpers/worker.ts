/**
 * Workers for tests: in-process (fast, inspectable) or as real child
 * processes running `streambed worker` (for crash and multi-process tests).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker-process.js';
import { REDIS_URL } from './redis.js';

export const BIN = fileURLToPath(new URL('../../bin/streambed.js', import.meta.url));

export type WorkerEnv = Record<string, string | number | undefined>;

function baseEnv(prefix: string, env: WorkerEnv): Record<string, string> {
  const out: Record<string, string> = {
    REDIS_URL,
    KEY_PREFIX: prefix,
    THREADS: '1',
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    ALLOW_REMOTE_MODELS: '0',
    BLOCK_MS: '200',
  };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = String(v);
  return out;
}

const running = new Set<WorkerHandle>();

export async function startTestWorker(prefix: string, env: WorkerEnv): Promise<WorkerHandle> {
  const config = loadConfig(baseEnv(prefix, env));
  const worker = startWorker(config, { log: createLogger(config.logLevel) });
  running.add(worker);
  await worker.started;
  return worker;
}

export async function stopTestWorker(worker: WorkerHandle): Promise<boolean> {
  running.delete(worker);
  return worker.stop();
}

/** Stop everything a test left running (afterEach/afterAll). */
export async function stopAllWorkers(): Promise<void> {
  await Promise.all([...running].map((w) => stopTestWorker(w)));
}

export interface ChildWorker {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function spawnWorker(prefix: string, env: WorkerEnv, args: string[] = []): ChildWorker {
  const proc = spawn(process.execPath, [BIN, 'worker', ...args], {
    env: { ...process.env, ...baseEnv(prefix, env) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

/** GET /readyz of a worker started with METRICS_PORT=port. */
export async function readyz(port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system, every thread) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
}
