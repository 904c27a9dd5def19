/**
 * `streambed console` as a user starts it (the built CLI, its own process),
 * with the URL it prints; and the headless Chromium the browser tests drive
 * (Debian's `chromium` package, through playwright-core).
 */
import { type ChildProcess, spawn } from 'node:child_process';

import { type Browser, chromium } from 'playwright-core';

import { REDIS_URL, until } from './redis.js';
import { BIN } from './worker.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface ConsoleProcess {
  url: string;
  proc: ChildProcess;
  /** Everything it printed (stdout and stderr). */
  output: () => string;
  stop(): Promise<number | null>;
}

export async function startConsole(
  prefix: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<ConsoleProcess> {
  const proc = spawn(process.execPath, [BIN, 'console', ...args], {
    env: {
      ...process.env,
      REDIS_URL,
      KEY_PREFIX: prefix,
      CONSOLE_PORT: '0',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await until(
    'the console to print its URL',
    () => /streambed console: (http:\/\/\S+)/.exec(out)?.[1],
    15_000,
  );
  return {
    url,
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
}
