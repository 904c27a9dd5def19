/**
 * The gateway while Redis is out of reach (a port nothing listens on: a
 * real refused connection, not a mock): it starts and serves /healthz, says
 * not ready, answers requests 503 within its bounds instead of hanging, and
 * still stops on SIGTERM.
 */
import OpenAI, { type APIError } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

import { type ChildGateway, spawnGateway } from './helpers/gateway.js';
import { randomPrefix } from './helpers/redis.js';

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
    const err = await g
      .client()
      .embeddings.create({ model: 'm', input: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as APIError).status).toBe(503);
    expect((err as APIError).code).toBe('unavailable');
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await g.stop()).toBe(0);
  });

  it('without MODELS, the model lookup is bounded too', async () => {
    const g = await start({});
    const err = await g
      .client()
      .embeddings.create({ model: 'm', input: 'x' })
      .catch((e: unknown) => e);
    expect((err as APIError).status).toBe(503);
    expect(await g.stop()).toBe(0);
  });
});
