/**
 * `streambed serve` as a child process for tests (the compiled CLI, as an
 * operator runs it), on a free port read back from its "gateway listening"
 * log line, plus an official `openai` client pointed at it.
 */
import { type ChildProcess, spawn } from 'node:child_process';

import OpenAI from 'openai';
import { expect } from 'vitest';

import { startConsole } from './console.js';
import { REDIS_URL, until } from './redis.js';
import { BIN } from './worker.js';

export interface ChildGateway {
  proc: ChildProcess;
  port: number;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  client(apiKey?: string): OpenAI;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export async function spawnGateway(
  prefix: string,
  env: Record<string, string | number>,
): Promise<ChildGateway> {
  const proc = spawn(process.execPath, [BIN, 'serve'], {
    env: {
      ...process.env,
      REDIS_URL,
      KEY_PREFIX: prefix,
      GATEWAY_PORT: '0',
      LOG_LEVEL: 'info',
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+),[^\n]*"msg":"gateway listening"/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    void exited.then((code) => reject(new Error(`gateway exited (${code}): ${out}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    proc,
    port,
    url,
    output: () => out,
    exited,
    client: (apiKey = 'none') =>
      new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * `streambed serve` started with `env` (how this test's Redis is reached:
 * sentinels, a cluster, an ACL user) finds it as the workers do: it embeds
 * two inputs through the fleet's `model` (no MODELS: it discovers the
 * model's stream).
 */
export async function expectGatewayReaches(
  prefix: string,
  env: Record<string, string>,
  model: string,
): Promise<void> {
  const gateway = await spawnGateway(prefix, env);
  try {
    const api = gateway.client();
    await until('the gateway lists the model', async () =>
      (await api.models.list()).data.some((m) => m.id === model),
    );
    const answer = await api.embeddings.create({ model, input: ['one', 'two'] });
    expect(answer.data.map((d) => d.index)).toEqual([0, 1]);
    expect(answer.data[0]!.embedding.length).toBeGreaterThan(0);
  } finally {
    expect(await gateway.stop()).toBe(0);
  }
}

/** The gateway as above, then `streambed console` with the same env: its state names `stream`. */
export async function expectGatewayAndConsoleReach(
  prefix: string,
  env: Record<string, string>,
  model: string,
  stream: string,
): Promise<void> {
  await expectGatewayReaches(prefix, env, model);
  const console = await startConsole(prefix, env);
  try {
    let state = '';
    await until(
      'the console has sampled the fleet',
      async () => {
        state = await (await fetch(new URL('/api/state', console.url))).text();
        return state.includes(JSON.stringify(stream));
      },
      15_000,
    ).catch(() => undefined);
    expect(state).toContain(JSON.stringify(stream));
  } finally {
    await console.stop();
  }
}
