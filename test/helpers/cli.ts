/**
 * Runs `node bin/streambed.js ...` as a user would (after `npm run build`),
 * with its own env, and reports what a user sees: exit code, stdout, stderr
 * and how long it took.
 */
import { spawn } from 'node:child_process';

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
