/**
 * Least privilege with real ACL users (src/acl/profiles.ts, docs/acl.md) on
 * a private redis-server: two workers with only the worker profile run the
 * whole path (interactive and bulk lanes, a plain bulk entry, leases, reclaim
 * after a SIGKILL, trim, DLQ, dedupe cache) with no NOPERM; a tenant's
 * producer submits and reads its own replies but cannot read another
 * tenant's, write a DLQ, write another tenant's bulk stream or read the shared
 * request stream; under the default reply pattern (`{prefix}:reply:{source}/*`)
 * a tenant's `embed()` and `submit --wait` get their answers, and a spoofed
 * reply_to is answered `reply_to_denied` on the global stream, never into
 * the other tenant's; the gateway with only its profile serves two keys'
 * sources; the operator reads status, the admin replays the DLQ.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type AclProfile, aclRules } from '../src/acl/profiles.js';
import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import { startConsole } from './helpers/console.js';
import { spawnGateway } from './helpers/gateway.js';
import { until } from './helpers/redis.js';
import { type PrivateRedis, privateRedis } from './helpers/redis-server.js';
import { BIN, type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = 'acl';
const k = keys(prefix);
let server: PrivateRedis;
let admin: Redis;
const children: ChildWorker[] = [];

/** A user of `profile` and its URL. */
const passwords: string[] = [];
/** In every page text of the worker run: no log line may carry it. */
const SECRET = `SECRET-${randomBytes(6).toString('hex')}`;

async function user(name: string, profile: AclProfile, extra: { source?: string } = {}) {
  const password = `pw-${randomBytes(6).toString('hex')}`;
  passwords.push(password);
  const rules = aclRules(profile, { prefix, models: ['fx'], ...extra });
  await admin.call('ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, ...rules);
  return `redis://${name}:${password}@127.0.0.1:${server.port}`;
}

beforeAll(async () => {
  server = await privateRedis();
  admin = new Redis(server.url);
});
afterAll(async () => {
  for (const c of children) {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
  admin.disconnect();
  await server.stop();
});

async function results(stream: string) {
  const entries = (await admin.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  return entries.map(([id, f]) => decodeResult(id.toString(), f));
}

/** No NOPERM, and (at LOG_LEVEL debug) no page text and no password in anything it printed. */
function noPerm(c: ChildWorker) {
  expect(c.output()).not.toMatch(/NOPERM|noperm/);
  expect(c.output()).not.toContain(SECRET);
  for (const p of passwords) expect(c.output()).not.toContain(p);
}

describe('ACL profiles', () => {
  it('workers with only the worker profile run the whole path, with no NOPERM anywhere', async () => {
    const url = await user('sb-worker', 'worker');
    const env = {
      REDIS_URL: url,
      MODELS: 'fx=fixture:8',
      LOG_LEVEL: 'debug',
      BATCH_SIZE: 4,
      IN_FLIGHT_BATCHES: 1,
      CLAIM_IDLE_MS: 1000,
      CLAIM_INTERVAL_MS: 200,
      TRIM_INTERVAL_MS: 300,
      DEDUPE_TTL_S: 60,
      // REPLY_TO_PATTERN unset: the default binds replies to their source.
    };
    const victim = spawnWorker(prefix, { ...env, CONSUMER_NAME: 'victim' });
    children.push(victim);
    await until(
      'victim reading',
      () => victim.output().includes('worker reading') || undefined,
      60_000,
    );
    const producer = new StreambedClient({ redis: admin, prefix });
    // Slow entries the victim takes and dies holding: the survivor reclaims them.
    await producer.submit(
      Array.from({ length: 6 }, (_, i) => ({
        id: `slow${i}`,
        source: 'a',
        text: `s${i} ${SECRET} @@slow:300`,
      })),
      { model: 'fx', replyTo: `${prefix}:reply:a/main` },
    );
    await until(
      'victim holds entries',
      async () =>
        ((await admin.xpending(k.request('fx'), k.group)) as [number])[0] > 0 || undefined,
    );
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const survivor = spawnWorker(prefix, { ...env, CONSUMER_NAME: 'survivor' });
    children.push(survivor);
    await producer.submit(
      [
        { id: 'same1', source: 'a', text: `the same text ${SECRET}` },
        { id: 'same2', source: 'a', text: `the same text ${SECRET}` },
        { id: 'bad', source: 'a', text: `poison ${SECRET} @@throw` },
      ],
      { model: 'fx', replyTo: `${prefix}:reply:a/main` },
    );
    await producer.submit(
      Array.from({ length: 5 }, (_, i) => ({
        id: `bulk${i}`,
        source: 'a',
        text: `bulk ${i} ${SECRET}`,
      })),
      { model: 'fx', lane: 'bulk', replyTo: `${prefix}:reply:a/main` },
    );
    await admin.xadd(
      k.request('fx', 'bulk'),
      '*',
      'id',
      'plain',
      'source',
      'a',
      'text',
      'plain bulk',
      'reply_to',
      `${prefix}:reply:a/main`,
    );
    const all = await until(
      '15 answers',
      async () => {
        const r = await results(`${prefix}:reply:a/main`);
        return r.length >= 15 ? r : undefined;
      },
      60_000,
      200,
    );
    expect(new Set(all.map((r) => r.id)).size).toBe(15);
    expect(all.find((r) => r.id === 'bad')?.status).toBe('error');
    expect(all.filter((r) => r.status === 'ok')).toHaveLength(14);
    expect(await admin.xlen(k.dlq('fx'))).toBe(1);
    expect(survivor.output()).toContain('reclaimed idle entries');
    // Trimmed: acknowledged history leaves the interactive stream.
    await until(
      'trimmed',
      async () => ((await admin.xlen(k.request('fx'))) <= 1 ? true : undefined),
      10_000,
    );
    noPerm(victim);
    noPerm(survivor);
    await producer.close();
  }, 120_000);

  it("a tenant's producer reaches its own streams only; a spoofed reply_to is denied", async () => {
    const aUrl = await user('tenant-a', 'producer', { source: 'a' });
    const tenantA = new Redis(aUrl);
    const client = new StreambedClient({ redis: aUrl, prefix });
    try {
      // Its own work: interactive and bulk submits (with their backpressure checks) and its replies.
      await client.submit([{ id: 'mine', source: 'a', text: 'own page' }], {
        model: 'fx',
        replyTo: `${prefix}:reply:a/own`,
      });
      await client.submit([{ id: 'mine-bulk', source: 'a', text: 'own bulk page' }], {
        model: 'fx',
        lane: 'bulk',
        replyTo: `${prefix}:reply:a/own`,
      });
      // A spoofed reply_to: answered reply_to_denied on the global stream, nothing in B's.
      await client.submit([{ id: 'spoof', source: 'a', text: 'aimed at b' }], {
        model: 'fx',
        replyTo: `${prefix}:reply:b/inbox`,
      });
      const own = await until(
        'own answers',
        async () => {
          const r = (await tenantA.xrange(`${prefix}:reply:a/own`, '-', '+')) as unknown[];
          return r.length >= 2 ? r : undefined;
        },
        60_000,
        200,
      );
      expect(own).toHaveLength(2);
      const denied = await until('spoof answered', async () =>
        (await results(k.results())).find((r) => r.id === 'spoof'),
      );
      expect(denied.status === 'error' && denied.res.code).toBe('reply_to_denied');
      expect(await admin.exists(`${prefix}:reply:b/inbox`)).toBe(0);

      await admin.xadd(`${prefix}:reply:b/inbox`, '*', 'id', 'x', 'status', 'ok');
      const refused = async (p: Promise<unknown>) => expect(p).rejects.toThrow(/NOPERM/);
      await refused(tenantA.xread('STREAMS', `${prefix}:reply:b/inbox`, '0'));
      await refused(tenantA.xrange(`${prefix}:reply:b/inbox`, '-', '+'));
      await refused(tenantA.xadd(k.dlq('fx'), '*', 'reason', 'forged'));
      await refused(
        tenantA.xadd(k.bulkSource('fx', 'b'), '*', 'id', 'x', 'source', 'b', 'text', 't'),
      );
      await refused(tenantA.xrange(k.request('fx'), '-', '+'));
      await refused(tenantA.hincrby(k.progress('b'), 'done', 1));

      // What the project ships, as this tenant: the SDK's embed() (a private stream
      // under its source) and `submit --wait` (the same, deleted at the end).
      const [vector] = await client.embed(['embedded as tenant a'], { model: 'fx', source: 'a' });
      expect(vector).toHaveLength(8);
      const wait = spawnSync(
        process.execPath,
        [BIN, 'submit', '-m', 'fx', '-s', 'a', '--wait', 'one', 'two'],
        {
          env: { ...process.env, REDIS_URL: aUrl, KEY_PREFIX: prefix, LOG_LEVEL: 'warn' },
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      expect(wait.stderr).not.toMatch(/NOPERM/);
      expect(wait.status, wait.stderr).toBe(0);
      expect(wait.stderr).toMatch(/^2 ok in /m);
      expect(wait.stderr).toContain(`results go to ${prefix}:reply:a/cli-`);
    } finally {
      await client.close();
      tenantA.disconnect();
    }
  }, 90_000);

  it('the gateway with only the gateway profile answers two keys, each under its source', async () => {
    // `right` has a rate limit: its per-minute counter is written under the profile too.
    const gwUrl = await user('sb-gateway', 'gateway');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-acl-gw-'));
    const keysFile = path.join(dir, 'keys');
    fs.writeFileSync(keysFile, 'sk-acl-left left\nsk-acl-right right 100\n');
    const gateway = await spawnGateway(prefix, {
      REDIS_URL: gwUrl,
      GATEWAY_KEYS_FILE: keysFile,
      LOG_LEVEL: 'debug',
    });
    const gw = new Redis(gwUrl);
    try {
      const left = gateway.client('sk-acl-left');
      const right = gateway.client('sk-acl-right');
      const [l, r, bulk] = await Promise.all([
        left.embeddings.create({ model: 'fx', input: ['left one', 'left two'] }),
        right.embeddings.create({ model: 'fx', input: 'right one' }),
        right.embeddings.create(
          { model: 'fx', input: 'right bulk' },
          { headers: { 'X-Streambed-Lane': 'bulk' } },
        ),
      ]);
      expect(l.data.map((d) => d.embedding.length)).toEqual([8, 8]);
      expect(r.data[0]?.embedding).toHaveLength(8);
      expect(bulk.data[0]?.embedding).toHaveLength(8);
      expect(Number(await admin.hget(k.progress('left'), 'done'))).toBeGreaterThanOrEqual(2);
      expect(Number(await admin.hget(k.progress('right'), 'done'))).toBeGreaterThanOrEqual(2);
      const streams = [
        ...new Set((await admin.keys(`${prefix}:reply:*/gateway-*`)).map((s) => s.split('/')[0])),
      ].sort();
      expect(streams).toEqual([`${prefix}:reply:left`, `${prefix}:reply:right`]);
      expect(gateway.output()).not.toMatch(/NOPERM|noperm/);
      for (const p of passwords) expect(gateway.output()).not.toContain(p);
      // It reads no page of a request stream and no tenant's own replies.
      const refused = async (p: Promise<unknown>) => expect(p).rejects.toThrow(/NOPERM/);
      await refused(gw.xrange(k.request('fx'), '-', '+'));
      await refused(gw.xread('STREAMS', `${prefix}:reply:a/own`, '0'));
      await refused(gw.expire(k.request('fx'), 1));
      await refused(gw.del(k.progress('left')));
    } finally {
      gw.disconnect();
      expect(await gateway.stop()).toBe(0);
    }
  }, 90_000);

  it('the operator reads status; the admin replays the DLQ', async () => {
    const opUrl = await user('sb-operator', 'operator');
    const adminUrl = await user('sb-admin', 'admin');
    const run = (url: string, args: string[]) =>
      spawnSync(process.execPath, [BIN, ...args], {
        env: { ...process.env, REDIS_URL: url, KEY_PREFIX: prefix, LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        timeout: 30_000,
      });
    // A backfill job with answers: status counts its failed ones in a script, which a
    // read-only user may run only as EVAL_RO (EVAL on %R~ keys was NOPERM).
    const corpus = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-acl-bf-'));
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(corpus, `p${i}.md`), `page ${i}`);
    const bf = run(server.url, ['backfill', corpus, '-m', 'fx', '--job', 'acl-job', '--wait']);
    fs.rmSync(corpus, { recursive: true, force: true });
    expect(bf.status, bf.stderr).toBe(0);
    const status = run(opUrl, ['status', '--json']);
    expect(status.stderr).not.toMatch(/NOPERM/);
    expect(status.status).toBe(0);
    const report = JSON.parse(status.stdout) as { models: unknown[]; jobs: Array<{ job: string }> };
    expect(report.models.length).toBeGreaterThan(0);
    expect(report.jobs.map((j) => j.job)).toContain('acl-job');
    // The console reads the same as an operator: its state, the job and the DLQ list.
    const web = await startConsole(prefix, { REDIS_URL: opUrl });
    try {
      const state = await until('the console sampled', async () => {
        const s = (await (await fetch(new URL('/api/state', web.url))).json()) as {
          report: { jobs: Array<{ job: string }> } | null;
          error: string | null;
        };
        return s.report || s.error ? s : undefined;
      });
      expect(state.error).toBeNull();
      expect(state.report?.jobs.map((j) => j.job)).toContain('acl-job');
      const dlq = await fetch(new URL('/api/dlq?model=fx', web.url));
      expect(dlq.status, await dlq.clone().text()).toBe(200);
      expect(web.output()).not.toMatch(/NOPERM/);
    } finally {
      await web.stop();
    }
    const list = run(opUrl, ['dlq', 'list', '-m', 'fx']);
    expect(list.stderr).not.toMatch(/NOPERM/);
    expect(list.status).toBe(0);
    // The operator cannot change anything.
    const opReplay = run(opUrl, ['dlq', 'replay', '-m', 'fx', '--force']);
    expect(opReplay.status).not.toBe(0);
    expect(`${opReplay.stdout}${opReplay.stderr}`).toMatch(/NOPERM|permission/i);
    const replay = run(adminUrl, ['dlq', 'replay', '-m', 'fx', '--force']);
    expect(replay.stderr).not.toMatch(/NOPERM/);
    expect(replay.status).toBe(0);
  }, 60_000);
});
