/**
 * Runs once before the suite: the suite needs a real Redis and the compiled
 * worker threads (piscina loads JavaScript), so say so plainly if either is missing.
 */
import fs from 'node:fs';

import { Redis } from 'ioredis';

export default async function setup(): Promise<void> {
  if (!fs.existsSync(new URL('../dist/workers/embed-worker.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm test` (it builds first) or `npm run build`');
  }
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`the test suite needs Redis at ${url}: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
