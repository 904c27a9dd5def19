/**
 * Issue 21, what an operator sees of bulk work: `streambed status` (run as
 * the real CLI) and the fleet gauges count every per-source bulk stream with
 * the lag and pending XINFO has for it; a stuck per-source entry and backlog
 * that no live worker serves fail `--check`, each breach on its own line;
 * `status` ignores worker settings it does not use.
 */
import { execFile } from 'node:child_process';

import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { FleetReader, registerFleetGauges } from '../src/metrics/fleet-gauges.js';
import { FailureTally, queueJob } from '../src/status/jobs.js';
import type { StatusReport } from '../src/status/report.js';
import { parseExposition } from './helpers/prometheus.js';
import { deletePrefix, groupInfo, randomPrefix, REDIS_URL, redisClient } from './helpers/redis.js';
import { BIN } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('status-bulk');
const k = keys(prefix);
const MODEL = 'bk';
/** Pages per source; `news` is never read, so its stream has no group yet. */
const PAGES = { wiki: 10, news: 5 };
const STUCK = 3;
const wiki = k.bulkSource(MODEL, 'wiki');
const news = k.bulkSource(MODEL, 'news');
const plain = k.request(MODEL, 'bulk');

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix, ...env } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

async function report(args: string[] = []): Promise<StatusReport> {
  const r = await cli(['status', '--json', '--sample-ms', '0', ...args]);
  expect(r.err).toBe('');
  return JSON.parse(r.out) as StatusReport;
}

beforeAll(async () => {
  const client = new StreambedClient({ redis, prefix });
  try {
    for (const [source, n] of Object.entries(PAGES)) {
      const pages = Array.from({ length: n }, (_, i) => ({ id: `p${i}`, source, text: 'x' }));
      await client.submit(pages, { model: MODEL, lane: 'bulk' });
    }
  } finally {
    await client.close();
  }
  // Two entries on the plain bulk stream, as redis-cli would add them (no group there yet).
  for (let i = 0; i < 2; i++)
    await redis.xadd(plain, '*', 'id', `r${i}`, 'source', 'cli', 'text', 'x');
  // A consumer that takes 3 wiki entries and is never heard of again (as the scheduler would, group at 0).
  await redis.xgroup('CREATE', wiki, k.group, '0');
  await redis.xreadgroup('GROUP', k.group, 'stuck-1', 'COUNT', STUCK, 'STREAMS', wiki, '>');
});

afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

describe('status of per-source bulk streams', () => {
  it('sums every bulk stream and reports each as XINFO does', async () => {
    // THREADS=abc is a worker setting: status must not parse it.
    const r = await cli(['status', '--json', '--sample-ms', '0', '--models', MODEL], {
      THREADS: 'abc',
    });
    expect(r.err).toBe('');
    const m = (JSON.parse(r.out) as StatusReport).models[0]!;
    const g = (await groupInfo(redis, wiki, k.group))!;
    expect(Number(g.lag)).toBe(PAGES.wiki - STUCK);
    expect(Number(g.pending)).toBe(STUCK);
    const byStream = Object.fromEntries(m.streams.map((s) => [s.stream, s]));
    expect(byStream[wiki]).toMatchObject({ source: 'wiki', lag: g.lag, pending: g.pending });
    // No group yet: the scheduler creates it at 0, so every entry is waiting.
    expect(byStream[news]).toMatchObject({ source: 'news', groupExists: false, lag: PAGES.news });
    expect(byStream[plain]).toMatchObject({ source: '*', lag: 2, pending: 0 });
    const bulk = m.lanes.find((l) => l.lane === 'bulk')!;
    expect(bulk).toMatchObject({
      streamCount: 3,
      length: PAGES.wiki + PAGES.news + 2,
      lag: PAGES.wiki - STUCK + PAGES.news + 2,
      pending: STUCK,
    });
    expect(m.consumers.map((c) => [c.name, c.pending])).toEqual([['stuck-1', STUCK]]);

    // The text form lists the per-source streams with work under the bulk row.
    const text = await cli(['status', '--sample-ms', '0']);
    expect(text.out).toMatch(new RegExp(`${MODEL} \\(bulk\\) +17 +14 +3 `));
    expect(text.out).toMatch(/ {2}bulk:wiki +10 +7 +3 /);
    expect(text.out).toMatch(/ {2}bulk:news +5 +5 +- /);
  });

  it('--check fails on a stuck per-source entry and on work no live consumer serves', async () => {
    // The stuck consumer read 3 entries well over 300 ms ago by now.
    await new Promise((r) => setTimeout(r, 400));
    const check = (...bounds: string[]) => cli(['status', '--check', '--models', MODEL, ...bounds]);
    expect((await check('--max-pending-age-ms', 'off', '--live-ms', '600000')).code).toBe(0);

    const stuck = await check('--max-pending-age-ms', '300', '--live-ms', '600000');
    expect(stuck.code).toBe(1);
    expect(stuck.out).toMatch(new RegExp(`^ {2}pending_age: ${wiki}: entry \\S+ on stuck-1`, 'm'));

    // The consumer is not live after 300 ms: every breach on its own line.
    const dead = await check('--max-pending-age-ms', '300', '--live-ms', '300');
    expect(dead.code).toBe(1);
    expect(dead.out).toMatch(
      /BREACHED \(2\)\n {2}pending_age: .*\n {2}no_live_consumer: model bk: 17 entries waiting/,
    );
    expect(dead.out).toMatch(/ {2}stuck-1 +dead +3 /);
    const json = await report(['--models', MODEL, '--live-ms', '300']);
    expect(json.models[0]).toMatchObject({ liveConsumers: 0, backlog: 17 });
    expect(json.models[0]!.consumers[0]!.state).toBe('dead');
  });

  it('--check fails on backlog for a model no worker serves', async () => {
    const submitted = await cli(['submit', '-m', 'nosuch', '--force', 'hello', 'world']);
    expect(submitted.err).toContain(`submitted 2 entries to ${k.request('nosuch')}`);
    const r = await cli(['status', '--check', '--models', 'nosuch']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ {2}unserved: model nosuch: 2 entries waiting/m);
  });

  it('submit --lane bulk names the per-source streams it wrote to', async () => {
    const r = await cli([
      'submit',
      '-m',
      'other',
      '--force',
      '--lane',
      'bulk',
      '-s',
      'newsrc',
      'hi',
    ]);
    expect(r.err).toContain(`submitted 1 entries to ${k.bulkSource('other', 'newsrc')}`);
  });
});

describe('fleet gauges of per-source bulk streams', () => {
  it('sum the bulk lane and label only allow-listed sources', async () => {
    const registry = new Registry();
    const reader = new FleetReader(async () => redis, {
      keys: k,
      models: () => [MODEL],
      sources: ['wiki'],
      cacheMs: 0,
      timeoutMs: 5000,
    });
    registerFleetGauges(registry, reader);
    const e = parseExposition(await registry.metrics());
    const g = (await groupInfo(redis, wiki, k.group))!;
    const lane = { model: MODEL, lane: 'bulk' };
    expect(e.value('streambed_stream_lag', lane)).toBe(PAGES.wiki - STUCK + PAGES.news + 2);
    expect(e.value('streambed_stream_pending', lane)).toBe(STUCK);
    expect(e.value('streambed_stream_length', lane)).toBe(PAGES.wiki + PAGES.news + 2);
    expect(e.value('streambed_stream_oldest_pending_idle_seconds', lane)).toBeGreaterThan(0);
    const wikiLabels = { model: MODEL, source: 'wiki' };
    expect(e.value('streambed_bulk_source_lag', wikiLabels)).toBe(Number(g.lag));
    expect(e.value('streambed_bulk_source_pending', wikiLabels)).toBe(Number(g.pending));
    // news is not allow-listed: no series with its name, however many sources there are.
    expect(e.samples.some((s) => s.labels.source === 'news')).toBe(false);
  });
});

describe('job failure counts', () => {
  it('count error answers in chunks, only new ones on the next sample, from zero after a restart', async () => {
    const stream = k.backfillReply('s', 'tally');
    const add = async (n: number, everyError: number) => {
      const p = redis.pipeline();
      for (let i = 0; i < n; i++)
        p.xadd(
          stream,
          '*',
          'id',
          `p${i}`,
          'source',
          's',
          'status',
          i % everyError ? 'ok' : 'error',
        );
      await p.exec();
    };
    const job = async () => {
      const p = redis.pipeline();
      const read = queueJob(p, k, 'tally', [stream]);
      return read((await p.exec()) ?? []);
    };
    await add(2500, 10); // 250 errors, over three script calls
    const tally = new FailureTally();
    expect(await tally.complete(redis, await job())).toMatchObject({ answered: 2500, failed: 250 });
    await add(30, 3); // 10 more
    expect(await tally.complete(redis, await job())).toMatchObject({ answered: 2530, failed: 260 });
    // --restart deletes the stream: the next count starts over.
    await redis.del(stream);
    await add(4, 2);
    expect(await tally.complete(redis, await job())).toMatchObject({ answered: 4, failed: 2 });
    // ... even when the new run has written more answers than the old one by the next sample.
    await redis.del(stream);
    await add(3000, 1000);
    expect(await tally.complete(redis, await job())).toMatchObject({ answered: 3000, failed: 3 });
  });
});
