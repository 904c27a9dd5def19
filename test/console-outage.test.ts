/**
 * The console through a Redis outage (a private redis-server, killed and
 * restarted): the last report stays, the state says Redis is unavailable
 * within seconds, dead letters answer 503 instead of hanging, and both
 * recover when Redis is back, without restarting the console; the outage
 * is logged once, not once per sample or request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ConsoleProcess, startConsole } from './helpers/console.js';
import { randomPrefix, until } from './helpers/redis.js';
import { type PrivateRedis, privateRedis } from './helpers/redis-server.js';

interface State {
  report: { generatedAtMs: number } | null;
  error: string | null;
}

let redis: PrivateRedis;
let console_: ConsoleProcess;

beforeAll(async () => {
  redis = await privateRedis();
  console_ = await startConsole(randomPrefix('console-outage'), { REDIS_URL: redis.url }, [
    '--interval-ms',
    '200',
  ]);
});

afterAll(async () => {
  await console_?.stop();
  await redis?.stop();
});

const state = async () =>
  (await (await fetch(new URL('/api/state', console_.url))).json()) as State;

describe('console during a Redis outage', () => {
  it('says Redis is unavailable, keeps serving, and recovers by itself', async () => {
    const before = await until('a first report', async () => (await state()).report ?? undefined);
    await redis.kill();
    const down = await until(
      'the outage to show',
      async () => {
        const s = await state();
        return s.error ? s : undefined;
      },
      10_000,
    );
    expect(down.error).toMatch(/^status unavailable: /);
    expect(down.report?.generatedAtMs).toBeGreaterThanOrEqual(before.generatedAtMs);
    const started = Date.now();
    const dlq = await fetch(new URL('/api/dlq', console_.url));
    expect(dlq.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await fetch(console_.url)).status).toBe(200); // the page itself needs no Redis

    await redis.start();
    const back = await until(
      'the console to recover',
      async () => {
        const s = await state();
        return s.error === null && s.report && s.report.generatedAtMs > down.report!.generatedAtMs
          ? s
          : undefined;
      },
      20_000,
    );
    expect(back.error).toBeNull();
    expect((await fetch(new URL('/api/dlq', console_.url))).status).toBe(200);
    expect(console_.proc.exitCode).toBeNull();
    // One line when the outage starts and one when it ends; no error per request or sample.
    const lines = console_.output().split('\n');
    expect(lines.filter((l) => l.includes('status refresh failed'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('status readable again'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('"level":50'))).toEqual([]);
  });
});
