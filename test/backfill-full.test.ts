/**
 * A backfill into a Redis at maxmemory (noeviction, as docs/operations.md
 * advises): every write it makes is refused (OOM), so it says so once and
 * waits for room instead of stopping at a checkpoint; with room back it
 * submits every page exactly once (a MULTI refused whole is sent again) and
 * waits for their answers. A private redis-server, whose memory the test
 * takes away and gives back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keys } from '../src/keys.js';
import { type CliProcess, spawnCli } from './helpers/cli.js';
import { randomPrefix, until } from './helpers/redis.js';
import { type PrivateRedis, privateRedis } from './helpers/redis-server.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = randomPrefix('bffull');
const k = keys(prefix);
const PAGES = 40;
let server: PrivateRedis;
let direct: Redis;
let backfill: CliProcess | undefined;
let worker: ChildWorker | undefined;

beforeAll(async () => {
  server = await privateRedis();
  direct = new Redis(server.url);
});

afterAll(async () => {
  backfill?.proc.kill('SIGKILL');
  worker?.proc.kill('SIGKILL');
  await Promise.all([backfill?.exited, worker?.exited]);
  direct.disconnect();
  await server.stop();
});

describe('backfill into a full Redis', () => {
  it('waits for room instead of failing, then submits each page once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bffull-'));
    const corpus = path.join(dir, 'pages.jsonl');
    const lines = Array.from({ length: PAGES }, (_, i) =>
      JSON.stringify({ id: `p${i}`, text: `page ${i}` }),
    );
    fs.writeFileSync(corpus, `${lines.join('\n')}\n`);
    await direct.config('SET', 'maxmemory', '1');
    const env = { REDIS_URL: server.url, KEY_PREFIX: prefix };
    backfill = spawnCli(
      ['backfill', corpus, '-m', 'fx', '--source', 'docs', '--job', 'full', '--wait', '--force'],
      env,
    );
    await until('it says Redis is full', () => /Redis is full/.test(backfill!.output()), 20_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(backfill.proc.exitCode, backfill.output()).toBeNull();

    await direct.config('SET', 'maxmemory', '0');
    worker = spawnWorker(prefix, { ...env, MODELS: 'fx=fixture:8' });
    expect(await backfill.exited, backfill.output()).toBe(0);
    expect(backfill.output()).toMatch(new RegExp(`${PAGES}/${PAGES} answered`));
    // Counted in the same MULTI as the entries: a chunk sent twice would count twice.
    expect(await direct.hget(k.progress('docs'), 'submitted')).toBe(String(PAGES));
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
