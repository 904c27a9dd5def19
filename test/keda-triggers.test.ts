/**
 * Issue 15, part 1: the chart's KEDA triggers see every backlog. The chart is
 * rendered with KEDA on and minReplicas 0; each trigger of the ScaledObject
 * is evaluated against a real Redis the way KEDA does (test/helpers/keda.ts).
 * Each kind of backlog alone activates a trigger (an SDK backfill's
 * per-source streams, a redis-cli entry on the plain bulk stream, an
 * interactive entry, entries pending on a SIGKILLed worker) and, once a real
 * fixture worker has answered everything, no trigger is active.
 */
import { spawnSync } from 'node:child_process';

import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { replayDlq } from '../src/dlq/replay.js';
import { keys } from '../src/keys.js';
import type { Page } from '../src/types.js';
import { helmTemplate, type K8sObject, valuesFile } from './helpers/helm.js';
import { activeNames, readTriggers, type Trigger, triggerName } from './helpers/keda.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { spawnWorker, startTestWorker, stopAllWorkers, stopTestWorker } from './helpers/worker.js';

const redis = redisClient();
const prefixes: string[] = [];
const clients: StreambedClient[] = [];

afterAll(async () => {
  await stopAllWorkers();
  for (const c of clients) await c.close();
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

interface Fleet {
  prefix: string;
  triggers: Trigger[];
  /** MODELS as the chart's ConfigMap gives it to the worker. */
  models: string;
  client: StreambedClient;
  reply: string;
}

/** The chart for one model `fx` (a fixture core) under a fresh prefix, KEDA on, scale to zero. */
function fleet(tag: string): Fleet {
  const prefix = randomPrefix(`keda-${tag}`);
  prefixes.push(prefix);
  const values = valuesFile({
    models: [{ name: 'fx', ref: 'fixture:8' }],
    worker: { keyPrefix: prefix },
    redis: { url: REDIS_URL },
    autoscaling: { keda: { enabled: true, minReplicas: 0 } },
  });
  let objects: K8sObject[];
  try {
    objects = helmTemplate([values.path]);
  } finally {
    values.dispose();
  }
  const so = objects.find((o) => o.kind === 'ScaledObject');
  const cm = objects.find((o) => o.kind === 'ConfigMap');
  const client = new StreambedClient({ redis, prefix });
  clients.push(client);
  return {
    prefix,
    triggers: so?.spec.triggers as Trigger[],
    models: cm?.data?.MODELS as string,
    client,
    reply: `${prefix}:reply:keda`,
  };
}

/** Several sources answered on one stream: the earlier, open reply pattern. */
const openReplies = (f: Fleet) => ({ REPLY_TO_PATTERN: `${f.prefix}:reply:*` });

const pages = (tag: string, n: number, sources: string[], extra = ''): Page[] =>
  sources.flatMap((source) =>
    Array.from({ length: n }, (_, i) => ({
      id: `${tag}-${source}-${i}`,
      source,
      text: `${tag} ${i}${extra}`,
    })),
  );

const submitBulk = (f: Fleet, p: Page[]) =>
  f.client.submit(p, { model: 'fx', lane: 'bulk', replyTo: f.reply });
const submitInteractive = (f: Fleet, p: Page[]) =>
  f.client.submit(p, { model: 'fx', replyTo: f.reply });

/** A producer that knows nothing of sources: redis-cli on the plain bulk stream. */
function redisCliBulk(f: Fleet, id: string): void {
  const r = spawnSync(
    'redis-cli',
    [
      '-u',
      REDIS_URL,
      'XADD',
      keys(f.prefix).request('fx', 'bulk'),
      '*',
      'id',
      id,
      'source',
      'cli',
      'text',
      'from redis-cli',
      'reply_to',
      f.reply,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
}

async function active(f: Fleet, on: Redis = redis): Promise<string[]> {
  return activeNames(await readTriggers(on, f.triggers));
}

const name = (f: Fleet) => {
  const k = keys(f.prefix);
  return {
    interactiveLag: `lag ${k.request('fx')}`,
    interactivePending: `pending ${k.request('fx')}`,
    bulkLag: `lag ${k.request('fx', 'bulk')}`,
    bulkPending: `pending ${k.request('fx', 'bulk')}`,
    backlog: `list ${k.bulkBacklog('fx')}`,
  };
};

/** A worker that takes entries and is SIGKILLed holding them: pending on a consumer that is gone. */
async function killHolding(f: Fleet): Promise<void> {
  const k = keys(f.prefix);
  // One slow page per stream keeps its batch, and the pages read with it, held for a while.
  await submitInteractive(f, [
    ...pages('i', 5, ['web']),
    ...pages('islow', 1, ['web'], ' @@slow:2000'),
  ]);
  await submitBulk(f, [
    ...pages('b', 5, ['crawl']),
    ...pages('bslow', 1, ['crawl'], ' @@slow:2000'),
  ]);
  const victim = spawnWorker(f.prefix, { MODELS: f.models, THREADS: 1, ...openReplies(f) });
  const held = async (stream: string) => {
    const [count] = (await redis.xpending(stream, k.group).catch(() => [0])) as [number];
    return Number(count) > 0;
  };
  const lag = async (stream: string) => {
    const groups = (await redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[][];
    const g = groups.map((x) => x.map(String)).find((x) => x[1] === k.group);
    return g ? Number(g[g.indexOf('lag') + 1]) : -1;
  };
  await until(
    'the victim holds every entry',
    async () =>
      (await held(k.request('fx'))) &&
      (await held(k.bulkSource('fx', 'crawl'))) &&
      (await lag(k.request('fx'))) === 0 &&
      (await lag(k.bulkSource('fx', 'crawl'))) === 0,
    30_000,
    10,
  );
  victim.proc.kill('SIGKILL');
  await victim.exited;
}

describe('KEDA triggers rendered by the chart (minReplicas 0)', () => {
  it('renders a fixed set per model: lag and pending per stream, one backlog list', () => {
    const f = fleet('shape');
    const n = name(f);
    expect(f.triggers.map((t) => `${t.type} ${triggerName(t)}`).sort()).toEqual(
      [
        `redis-streams ${n.interactiveLag}`,
        `redis-streams ${n.interactivePending}`,
        `redis-streams ${n.bulkLag}`,
        `redis-streams ${n.bulkPending}`,
        `redis ${n.backlog}`,
      ].sort(),
    );
  });

  it('an SDK backfill alone (per-source streams, nobody ever ran) wakes the fleet', async () => {
    const f = fleet('sdk');
    expect(await active(f)).toEqual([]);
    await submitBulk(f, pages('b', 4, ['s1', 's2', 's3']));
    expect(await active(f)).toEqual([name(f).backlog]);
    const [reading] = (await readTriggers(redis, f.triggers)).filter(
      (r) => r.trigger.type === 'redis',
    );
    expect(reading?.value).toBe(12); // one token per entry
  });

  it('a redis-cli entry on the plain bulk stream wakes the fleet', async () => {
    const f = fleet('cli');
    redisCliBulk(f, 'c1');
    expect(await active(f)).toEqual([name(f).bulkLag]);
  });

  it('an interactive entry wakes the fleet', async () => {
    const f = fleet('int');
    await submitInteractive(f, pages('i', 1, ['web']));
    expect(await active(f)).toEqual([name(f).interactiveLag]);
  });

  it('entries pending on a SIGKILLed worker (interactive and per-source bulk) wake the fleet', async () => {
    const f = fleet('gone');
    await killHolding(f);
    const n = name(f);
    // Nothing is left undelivered: only the pending-side triggers can see this work.
    expect(await active(f)).toEqual([n.backlog, n.interactivePending].sort());
  });

  it('a DLQ replay to a per-source stream schedules the source and wakes the fleet', async () => {
    const f = fleet('dlq');
    const worker = await startTestWorker(f.prefix, { MODELS: f.models, ...openReplies(f) });
    await submitBulk(f, pages('poison', 1, ['crawl'], ' @@throw'));
    await until('dead-lettered', async () => (await redis.xlen(keys(f.prefix).dlq('fx'))) === 1);
    await stopTestWorker(worker);
    expect(await active(f)).toEqual([]);
    const report = await replayDlq(redis, keys(f.prefix), { model: 'fx' });
    expect(report.replayed).toHaveLength(1);
    expect(await active(f)).toEqual([name(f).backlog]);
    expect(await redis.zscore(keys(f.prefix).bulkSchedule('fx'), 'crawl')).toBe('-1');
  });

  it('every kind at once is seen, and none is once a fixture worker answered everything', async () => {
    const f = fleet('all');
    const n = name(f);
    await killHolding(f);
    await submitBulk(f, pages('b2', 20, ['s1', 's2']));
    redisCliBulk(f, 'c1');
    await submitInteractive(f, pages('i2', 10, ['web']));
    expect(await active(f)).toEqual(
      [n.interactiveLag, n.interactivePending, n.bulkLag, n.backlog].sort(),
    );
    const total = 6 + 6 + 40 + 1 + 10;

    await startTestWorker(f.prefix, {
      MODELS: f.models,
      ...openReplies(f),
      CLAIM_IDLE_MS: 1000,
      CLAIM_INTERVAL_MS: 200,
    });
    await until(
      'every entry answered',
      async () => (await redis.xlen(f.reply)) >= total,
      40_000,
      100,
    );
    const results = await redis.xrange(f.reply, '-', '+');
    const ids = results.map(([, fields]) => fields[fields.indexOf('id') + 1]);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total); // each entry answered exactly once
    expect(results.every(([, fields]) => fields[fields.indexOf('status') + 1] === 'ok')).toBe(true);

    const readings = await readTriggers(redis, f.triggers);
    expect(readings.filter((r) => r.error)).toEqual([]);
    expect(readings.map((r) => [r.key, r.value])).toEqual(readings.map((r) => [r.key, 0]));
    expect(activeNames(readings)).toEqual([]);
  });
});
