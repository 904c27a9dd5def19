/**
 * Runs `node bin/streambed.js ...` as a user would (after `npm run build`),
 * with its own env, and reports what a user sees: exit code, stdout, stderr
 * and how long it took.
 */
import { type ChildProcess, spawn } from 'node:child_process';

import { REDIS_URL } from './redis.js';
import { BIN } from './worker.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Settings a developer's shell may carry that would change what the CLI does. */
const SCRUBBED = ['LOG_FORMAT', 'LOG_LEVEL', 'SINK', 'PG_URL', 'MODELS', 'METRICS_PORT'];

export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<CliRun> {
  const base: Record<string, string | undefined> = { ...process.env, REDIS_URL };
  for (const k of SCRUBBED) delete base[k];
  const started = Date.now();
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

export interface CliProcess {
  proc: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output: () => string;
  exited: Promise<number | null>;
}

/** `streambed ...` left running, to be killed mid-way (crash tests); the caller kills leftovers. */
export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const base: Record<string, string | undefined> = { ...process.env, REDIS_URL };
  for (const k of SCRUBBED) delete base[k];
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, output: () => out, exited };
}

/** Spawns `streambed ...` under one key prefix, and kills whatever is left at the end. */
export function cliSpawner(prefix: string) {
  const running: ChildProcess[] = [];
  return {
    run(args: string[], env: Record<string, string> = {}): CliProcess {
      const run = spawnCli(args, { KEY_PREFIX: prefix, ...env });
      running.push(run.proc);
      return run;
    },
    killAll(): void {
      for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
    },
  };
}
