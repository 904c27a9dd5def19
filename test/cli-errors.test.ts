/**
 * The command line's failure modes, run as a user runs them (a subprocess of
 * bin/streambed.js): configuration mistakes exit 2 at once and say what to
 * change; an unreachable Redis makes a client exit 3 within seconds with one
 * line naming the URL without its password and no ioredis noise; a worker
 * that cannot reach Redis warns once and keeps retrying.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { flagName, REDIS_SETTINGS, SETTINGS } from '../src/config/settings.js';
import { runCli } from './helpers/cli.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { freePort, type PrivateRedis, privateRedis } from './helpers/redis-server.js';
import { spawnWorker } from './helpers/worker.js';

const prefix = randomPrefix('clierr');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-clierr-'));
const PASSWORD = 'pw-not-to-be-printed';
/** --redis-url, --redis-tls-ca-file, --redis-sentinels, ... */
const SETTINGS_FLAGS = REDIS_SETTINGS.map((k) => flagName(SETTINGS[k].env));
let redis: Redis;
let locked: PrivateRedis;

beforeAll(async () => {
  redis = redisClient();
  fs.writeFileSync(path.join(tmp, 'a.md'), 'a page');
  locked = await privateRedis([], { user: 'sb-user', password: PASSWORD });
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
  await locked.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** One line, no stack, no library noise, no secret. */
function expectOneCleanLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/ioredis|\n\s+at |Unhandled/);
  expect(stderr).not.toContain(PASSWORD);
}

describe('an unreachable Redis', () => {
  const clients: Array<[string, string[]]> = [
    ['submit', ['submit', '-m', 'tiny', 'hello']],
    ['submit --wait', ['submit', '-m', 'tiny', '--wait', 'hello']],
    ['search', ['search', '-m', 'tiny', '--sink', `pglite:${path.join(tmp, 'pg')}`, 'hello']],
    ['backfill', ['backfill', tmp, '-m', 'tiny', '--wait']],
    ['dlq list', ['dlq', 'list']],
    ['status', ['status']],
    ['status --check', ['status', '--check']],
  ];
  it.each(clients)(
    '%s exits 3 within seconds, naming the URL without its password',
    async (_name, args) => {
      const port = await freePort();
      const r = await runCli(args, {
        REDIS_URL: `redis://user:${PASSWORD}@127.0.0.1:${port}`,
        KEY_PREFIX: prefix,
      });
      expect(r.code, r.stderr).toBe(3);
      expect(r.ms).toBeLessThan(10_000);
      expect(r.stderr).toContain(
        `streambed: redis_unavailable: Redis at redis://user:***@127.0.0.1:${port}`,
      );
      expect(r.stderr).toMatch(/ECONNREFUSED/);
      expectOneCleanLine(r.stderr);
    },
  );

  it('search with an unreachable Postgres exits 3, naming PG_URL without its password', async () => {
    // A group on the stream, so search gets as far as the sink.
    await redis.xgroup('CREATE', `${prefix}:req:tiny`, 'sb-workers', '$', 'MKSTREAM');
    const port = await freePort();
    const r = await runCli(['search', '-m', 'tiny', 'hello'], {
      KEY_PREFIX: prefix,
      PG_URL: `postgres://u:${PASSWORD}@127.0.0.1:${port}/db`,
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.ms).toBeLessThan(10_000);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^warning: no worker has read .*: the query waits/);
    expect(lines[1]).toBe(
      `streambed: sink_unavailable: Postgres at postgres://u:***@127.0.0.1:${port}/db is not reachable ` +
        `(connect ECONNREFUSED 127.0.0.1:${port}): check PG_URL and that the server is running`,
    );
    expectOneCleanLine(lines.slice(1).join('\n'));
  });

  it('a worker warns once and keeps retrying, without library noise', async () => {
    const port = await freePort();
    const w = spawnWorker(prefix, {
      REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}`,
      MODELS: 'fx=fixture:4',
      LOG_LEVEL: 'info',
    });
    try {
      const warned = () =>
        w
          .output()
          .split('\n')
          .filter((l) => l.includes('redis unreachable'));
      await until('the warning', () => warned().length > 0, 20_000);
      // Ioredis retries every few seconds meanwhile; none of that may reach the log.
      await new Promise((r) => setTimeout(r, 4_000));
      expect(warned(), w.output()).toHaveLength(1);
      expect(JSON.parse(warned()[0] as string)).toMatchObject({ level: 40, err: 'ECONNREFUSED' });
      expect(w.output()).not.toMatch(/\[ioredis\]|Unhandled/);
      expect(w.output()).not.toContain(PASSWORD);
      expect(w.proc.exitCode).toBeNull();
    } finally {
      w.proc.kill('SIGKILL');
      await w.exited;
    }
  });
});

describe('refused credentials are a configuration error (exit 2)', () => {
  it.each([
    ['a wrong password', `sb-user:wrong-${PASSWORD}@`, /WRONGPASS/],
    ['no password', '', /NOAUTH/],
  ])('submit with %s', async (_name, auth, code) => {
    const r = await runCli(['submit', '-m', 'tiny', 'hello'], {
      REDIS_URL: `redis://${auth}127.0.0.1:${locked.port}`,
      KEY_PREFIX: prefix,
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).toMatch(
      /^streambed: config: Redis at redis:\/\/.*127\.0\.0\.1:\d+ refused the credentials/,
    );
    expect(r.stderr).toMatch(code);
    expect(r.stderr).toMatch(/fix the user and password in REDIS_URL/);
    expectOneCleanLine(r.stderr.replace(`wrong-${PASSWORD}`, ''));
  });

  it('a worker with a wrong password exits 2', async () => {
    const w = spawnWorker(prefix, {
      REDIS_URL: `redis://:wrong@127.0.0.1:${locked.port}`,
      MODELS: 'fx=fixture:4',
    });
    expect(await w.exited).toBe(2);
    expect(w.output()).toMatch(/WRONGPASS/);
    expect(w.output()).not.toMatch(/\[ioredis\]|Unhandled/);
  });
});

describe('configuration and usage mistakes exit 2 at once, saying what to change', () => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    [
      'a missing input file',
      ['submit', '-m', 'fx', '-f', path.join(tmp, 'nope.md')],
      {},
      /nope\.md: no such file/,
    ],
    [
      'a missing JSONL file',
      ['submit', '-m', 'fx', '--jsonl', path.join(tmp, 'nope.jsonl')],
      {},
      /nope\.jsonl: no such file/,
    ],
    [
      'a directory as a file',
      ['submit', '-m', 'fx', '-f', tmp],
      {},
      /is a directory: .*streambed backfill/,
    ],
    [
      'a missing backfill input',
      ['backfill', path.join(tmp, 'nope'), '-m', 'fx'],
      {},
      /no such file or directory/,
    ],
    [
      'a malformed LOG_LEVEL',
      ['submit', '-m', 'fx', 'x'],
      { LOG_LEVEL: 'verbose' },
      /LOG_LEVEL="verbose"/,
    ],
    [
      'a chunk window under the minimum (backfill)',
      ['backfill', tmp, '-m', 'fx', '--chunk', '4'],
      {},
      /--chunk\/--chunk-overlap: "chunk" must be .*window at least 8/,
    ],
    [
      'a chunk overlap of half the window (submit)',
      ['submit', '-m', 'fx', '--chunk', '64', '--chunk-overlap', '32', 'x'],
      {},
      /overlap under half of it/,
    ],
    ['a missing required option', ['submit', 'x'], {}, /required option '-m, --model <name>'/],
    ['an unknown option', ['submit', '-m', 'fx', '--nosuch', 'x'], {}, /unknown option '--nosuch'/],
    [
      'a local model folder that does not exist',
      ['worker'],
      { MODELS: `fx=${path.join(tmp, 'no-model')}` },
      /model "fx": folder .*no-model does not exist/,
    ],
  ];
  it.each(cases)('%s', async (_name, args, env, message) => {
    const r = await runCli(args, { KEY_PREFIX: prefix, METRICS_PORT: '0', ...env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/internal|\n\s+at /);
  });

  it('a second worker on one host is told to change METRICS_PORT', async () => {
    const port = await freePort();
    const first = spawnWorker(prefix, { MODELS: 'fx=fixture:4', METRICS_PORT: port });
    try {
      await until('the first worker serves metrics', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
        return res?.ok;
      });
      const r = await runCli(['worker'], {
        KEY_PREFIX: prefix,
        MODELS: 'fx=fixture:4',
        METRICS_PORT: String(port),
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`streambed: config: METRICS_PORT ${port} is already in use`);
      expect(r.stderr).toMatch(/own METRICS_PORT/);
    } finally {
      first.proc.kill('SIGKILL');
      await first.exited;
    }
  });
});

describe('help and version', () => {
  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
    expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('--help lists the choices of LOG_LEVEL, LOG_FORMAT and SINK_INDEX and no empty default', async () => {
    const r = await runCli(['worker', '--help']);
    const help = r.stdout.replace(/\s+/g, ' ');
    expect(help).toContain('choices: "fatal", "error", "warn", "info", "debug", "trace", "silent"');
    expect(help).toContain('choices: "pretty", "json"');
    expect(help).toContain('choices: "none", "hnsw", "ivfflat"');
    expect(help).not.toContain('(default: )');
  });

  it("every command that reaches the fleet's Redis takes all of its settings (TLS, Sentinel, Cluster)", async () => {
    // demo is left out: it runs against a private or local Redis of its own.
    const commands = [
      ['worker'],
      ['submit'],
      ['backfill'],
      ['search'],
      ['dlq', 'list'],
      ['status'],
      ['console'],
      ['serve'],
    ];
    for (const cmd of commands) {
      const r = await runCli([...cmd, '--help']);
      for (const flag of SETTINGS_FLAGS)
        expect(r.stdout, `${cmd.join(' ')} ${flag}`).toContain(flag);
    }
  });

  it('submit and search take the Redis TLS CA file', async () => {
    for (const cmd of ['submit', 'search']) {
      const r = await runCli([cmd, '--help']);
      expect(r.stdout, cmd).toContain('--redis-tls-ca-file');
    }
  });
});
