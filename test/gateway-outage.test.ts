/**
 * The gateway while Redis is out of reach (a port nothing listens on: a
 * real refused connection, not a mock): it starts and serves /healthz, says
 * not ready, answers requests 503 within its bounds instead of hanging, and
 * still stops on SIGTERM.
 */
import { Redis } from 'ioredis';
import OpenAI, { type APIError } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

import { type ChildGateway, spawnGateway } from './helpers/gateway.js';
import { randomPrefix, until } from './helpers/redis.js';
import { privateRedis } from './helpers/redis-server.js';

const gateways: ChildGateway[] = [];
const start = async (env: Record<string, string | number>) => {
  const g = await spawnGateway(randomPrefix('gwout'), {
    REDIS_URL: 'redis://127.0.0.1:1',
    LOG_LEVEL: 'info',
    ...env,
  });
  gateways.push(g);
  return g;
};

/** One embeddings request for model `m`: its error (every request here is refused or times out). */
const attempt = (g: ChildGateway) =>
  g
    .client()
    .embeddings.create({ model: 'm', input: 'x' })
    .then(
      () => undefined,
      (e: unknown) => e as APIError,
    );

afterAll(() => {
  for (const g of gateways) if (g.proc.exitCode === null) g.proc.kill('SIGKILL');
});

describe('gateway misconfigured', () => {
  it("refuses to start when the workers' REPLY_TO_PATTERN would refuse its reply streams", async () => {
    // Started, it would have sent every request to the DLQ (reply_to_denied) and answered 504.
    const refused = start({ MODELS: 'm', REPLY_TO_PATTERN: 'elsewhere:{source}/*' });
    await expect(refused).rejects.toThrow(/exited \(2\)[\s\S]*REPLY_TO_PATTERN=elsewhere/);
    // The pattern the workers use by default (and the open one) lets it start.
    const open = await start({ MODELS: 'm', REPLY_TO_PATTERN: `*` });
    expect((await fetch(`${open.url}/healthz`)).status).toBe(200);
    expect(await open.stop()).toBe(0);
  });
});

describe('gateway on a Redis that is full', () => {
  it('answers 503 redis_full with Retry-After while Redis refuses writes, and serves again after', async () => {
    const server = await privateRedis();
    const direct = new Redis(server.url);
    try {
      const g = await start({ REDIS_URL: server.url, MODELS: 'm', GATEWAY_TIMEOUT_MS: 500 });
      await until('ready', async () => (await fetch(`${g.url}/readyz`)).status === 200);
      await direct.config('SET', 'maxmemory', '1');
      const full = await attempt(g);
      expect(full).toBeInstanceOf(OpenAI.InternalServerError);
      expect(full!.status).toBe(503);
      expect(full!.code).toBe('redis_full');
      expect(full!.headers?.get('retry-after')).toBe('5');
      await direct.config('SET', 'maxmemory', '0');
      // Queued now (no worker here: it times out, 504, instead of being refused).
      const queued = await attempt(g);
      expect(queued!.status).toBe(504);
      expect(await g.stop()).toBe(0);
    } finally {
      direct.disconnect();
      await server.stop();
    }
  });
});

describe('gateway with Redis out of reach', () => {
  it('serves /healthz, is not ready, answers 503 and stops on SIGTERM', async () => {
    const g = await start({ MODELS: 'm', GATEWAY_TIMEOUT_MS: 500 });
    expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${g.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/redis/);
    // MODELS names the models: listing them needs no Redis.
    expect((await g.client().models.list()).data.map((m) => m.id)).toEqual(['m']);
    const t0 = Date.now();
    const err = await attempt(g);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err!.status).toBe(503);
    expect(err!.code).toBe('unavailable');
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await g.stop()).toBe(0);
  });

  it('without MODELS, the model lookup is bounded too', async () => {
    const g = await start({});
    const err = await attempt(g);
    expect(err!.status).toBe(503);
    expect(await g.stop()).toBe(0);
  });
});
