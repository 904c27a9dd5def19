/**
 * Redis at maxmemory (issue 12 acceptance), on a private redis-server with
 * `--maxmemory-policy noeviction`: every write that may grow memory is
 * refused (OOM) while reads go on. A worker process caught by it mid-run
 * keeps what it holds, retries with backoff (bounded CPU, not a spinning
 * core), says why on /readyz, and once memory is back answers every entry
 * exactly once, ok, computed once -- none dead-lettered, none answered
 * `reply_to_denied`. Leases still renew (XCLAIM is not refused), so an
 * outage longer than CLAIM_IDLE_MS makes no worker take over another's
 * entries. A worker started while Redis is already refusing writes (group
 * there or not yet) stays up, not ready, and serves once memory is back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { answersById, groupInfo, notAnsweredOnce, randomPrefix, until } from './helpers/redis.js';
import {
  fillMemory,
  freeMemory,
  freePort,
  type PrivateRedis,
  privateServers,
} from './helpers/redis-server.js';
import { type ChildWorker, cpuSeconds, readyz, spawnWorker } from './helpers/worker.js';

const TOTAL = 500;
const OUTAGE_MS = 5_000;
const MODEL = 'fx';
const children: ChildWorker[] = [];
const servers = privateServers(['--maxmemory-policy', 'noeviction']);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-oom-'));

afterAll(async () => {
  for (const c of children) c.proc.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  await servers.stopAll();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function startWorker(
  server: PrivateRedis,
  prefix: string,
  env: Record<string, string | number> = {},
) {
  const port = await freePort();
  const computeLog = path.join(tmp, `${prefix}.log`);
  const worker = spawnWorker(prefix, {
    REDIS_URL: server.url,
    MODELS: `${MODEL}=fixture:8`,
    // Several sources answered on one stream: the earlier, open reply pattern.
    REPLY_TO_PATTERN: `${prefix}:reply:*`,
    METRICS_PORT: port,
    SB_COMPUTE_LOG: computeLog,
    BATCH_SIZE: 8,
    ...env,
  });
  children.push(worker);
  const status = async () => (await readyz(port).catch(() => undefined)) ?? { status: 0, body: '' };
  const computed = () =>
    fs.existsSync(computeLog)
      ? fs.readFileSync(computeLog, 'utf8').split('\n').filter(Boolean)
      : [];
  /** Waits for /readyz to be 503 with a reason that includes `reason`; returns its body. */
  const notReady = (reason: string) =>
    until(
      `readyz not ready: ${reason}`,
      async () => {
        const r = await status();
        return r.status === 503 && r.body.includes(reason) && r.body;
      },
      15_000,
    );
  return { worker, status, notReady, computed };
}

const alive = (w: ChildWorker) => w.proc.exitCode === null && w.proc.signalCode === null;

/** Each submitted text was computed once: one compute-log line each, all different. */
function expectComputedOnce(lines: string[], n: number): void {
  expect(lines).toHaveLength(n);
  expect(new Set(lines).size).toBe(n);
}

describe('redis at maxmemory', () => {
  it(`keeps ${TOTAL} entries through an OOM outage mid-run: bounded CPU, not ready, then each answered once`, async () => {
    const { server, redis } = await servers.start();
    const prefix = randomPrefix('oom');
    const k = keys(prefix);
    const replyTo = `${prefix}:reply:oom`;
    const client = new StreambedClient({ redis, prefix, maxBacklog: TOTAL * 2 });
    // 5 ms a text: a run of ~2.5 s of compute, so the outage comes mid-run. Half the
    // entries answer on a reply stream: an OOM must never make them `reply_to_denied`.
    const pages = Array.from({ length: TOTAL }, (_, i) => ({
      id: `p${i}`,
      source: `s${i % 3}`,
      text: `page ${i} @@slow:5`,
    }));
    await client.submit(pages.slice(0, TOTAL / 2), { model: MODEL, replyTo });
    await client.submit(pages.slice(TOTAL / 2), { model: MODEL });
    const { worker, status, notReady, computed } = await startWorker(server, prefix);
    const answered = async () => (await redis.xlen(replyTo)) + (await redis.xlen(k.results()));

    await until('some answers', async () => (await answered()) >= TOTAL / 4, 30_000, 10);
    await fillMemory(redis);
    const before = await answered();
    const refused = await notReady('redis refuses result writes');
    expect(refused).toMatch(/OOM/);

    const cpu0 = cpuSeconds(worker.proc.pid as number);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const core = (cpuSeconds(worker.proc.pid as number) - cpu0) / ((performance.now() - t0) / 1000);
    const during = await status();
    const stuck = await answered();
    console.log(
      `redis-oom: worker CPU during ${OUTAGE_MS} ms of OOM = ${core.toFixed(3)} of a core; ` +
        `${before} answered before, ${stuck - before} during, ${computed().length} computed`,
    );
    expect(core).toBeLessThan(0.5);
    expect(during.status).toBe(503);
    expect(during.body).toMatch(/redis refuses result writes: OOM/);
    expect(stuck).toBe(before);
    expect(alive(worker)).toBe(true);

    await freeMemory(redis);
    await until('every entry answered', async () => (await answered()) >= TOTAL, 30_000, 50);
    await until('ready again', async () => (await status()).status === 200, 10_000);
    await until(
      'nothing pending',
      async () => (await groupInfo(redis, k.request(MODEL), k.group))?.pending === 0,
      10_000,
    );
    const answers = await answersById(redis, [replyTo, k.results()]);
    expect(notAnsweredOnce(pages, answers)).toEqual({});
    expect(answers.size).toBe(TOTAL);
    expect(await redis.xlen(replyTo)).toBe(TOTAL / 2);
    expect(await redis.exists(k.dlq(MODEL))).toBe(0);
    expectComputedOnce(computed(), TOTAL);
    expect(alive(worker)).toBe(true);
  });

  it('renews leases through an outage longer than CLAIM_IDLE_MS: two workers, nothing taken over or computed twice', async () => {
    const { server, redis } = await servers.start();
    const prefix = randomPrefix('oom-lease');
    const k = keys(prefix);
    const n = 200;
    const pages = Array.from({ length: n }, (_, i) => ({
      id: `p${i}`,
      source: 's',
      text: `page ${i} @@slow:5`,
    }));
    await new StreambedClient({ redis, prefix }).submit(pages, { model: MODEL });
    const env = { CLAIM_IDLE_MS: 1_000, CLAIM_INTERVAL_MS: 200, LOG_LEVEL: 'info' };
    const workers = [
      await startWorker(server, prefix, env),
      await startWorker(server, prefix, env),
    ];
    await until('some answers', async () => (await redis.xlen(k.results())) >= n / 4, 30_000, 10);
    await fillMemory(redis);
    for (const w of workers) await w.notReady('redis refuses result writes');
    // Three times CLAIM_IDLE_MS with every entry held and unwritable.
    await new Promise((r) => setTimeout(r, 3_000));
    await freeMemory(redis);
    await until('every entry answered', async () => (await redis.xlen(k.results())) >= n, 30_000);
    const reclaims = workers.flatMap((w) =>
      w.worker
        .output()
        .split('\n')
        .filter((l) => l.includes('reclaimed idle entries')),
    );
    expect(reclaims).toEqual([]);
    expect(notAnsweredOnce(pages, await answersById(redis, [k.results()]))).toEqual({});
    expect(await redis.exists(k.dlq(MODEL))).toBe(0);
    // Both workers append to one compute log (one per prefix).
    expectComputedOnce(workers[0]?.computed() ?? [], n);
  });

  it('starts while Redis refuses writes, with the group there or not yet: stays up, not ready, then serves', async () => {
    const { server, redis } = await servers.start();
    const n = 40;
    const pages = (tag: string) =>
      Array.from({ length: n }, (_, i) => ({ id: `${tag}${i}`, source: 's', text: `${tag} ${i}` }));
    // One prefix with its streams, group and entries made before the outage; one with nothing.
    const made = randomPrefix('oom-made');
    const fresh = randomPrefix('oom-fresh');
    const madeClient = new StreambedClient({ redis, prefix: made });
    const freshClient = new StreambedClient({ redis, prefix: fresh });
    for (const lane of ['interactive', 'bulk'] as const)
      await redis.xgroup(
        'CREATE',
        keys(made).request(MODEL, lane),
        keys(made).group,
        '0',
        'MKSTREAM',
      );
    await madeClient.submit(pages('m'), { model: MODEL });

    await fillMemory(redis);
    const a = await startWorker(server, made);
    const b = await startWorker(server, fresh);
    // The group exists: the worker reads and computes, but cannot write its answers.
    const aBody = await a.notReady('redis refuses result writes');
    // No group yet: it cannot be created; the worker waits rather than exit.
    const bBody = await b.notReady('cannot create consumer groups');
    console.log(`redis-oom: readyz at start under OOM:\n  ${aBody.trim()}\n  ${bBody.trim()}`);
    expect(aBody).toMatch(/OOM/);
    expect(bBody).toMatch(/OOM/);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(alive(a.worker)).toBe(true);
    expect(alive(b.worker)).toBe(true);
    expect((await a.status()).status).toBe(503);
    expect((await b.status()).status).toBe(503);
    expect(await redis.exists(keys(fresh).request(MODEL))).toBe(0);

    await freeMemory(redis);
    await until('fresh: ready', async () => (await b.status()).status === 200, 15_000);
    await freshClient.submit(pages('f'), { model: MODEL });
    await until('made: ready', async () => (await a.status()).status === 200, 15_000);
    for (const [prefix, tag, w] of [
      [made, 'm', a],
      [fresh, 'f', b],
    ] as const) {
      const k = keys(prefix);
      await until('all answered', async () => (await redis.xlen(k.results())) >= n, 15_000);
      expect(notAnsweredOnce(pages(tag), await answersById(redis, [k.results()]))).toEqual({});
      expect(await redis.exists(k.dlq(MODEL))).toBe(0);
      expectComputedOnce(w.computed(), n);
      expect(alive(w.worker)).toBe(true);
    }
  });
});
