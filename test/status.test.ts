/**
 * `streambed status` (issue 4): run as the real CLI against real Redis. A
 * worker process SIGKILLed mid-batch shows up with its pending entries and
 * their ages exactly as XPENDING has them, and is gone after reclaim;
 * `--check` exits non-zero exactly when a threshold is breached; `--watch`
 * refreshes with rates; the text form fits 80 columns.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { gatherSample, type Sample } from '../src/status/gather.js';
import { renderText, WIDTH } from '../src/status/render-text.js';
import {
  buildReport,
  sourceState,
  type StatusReport,
  type Thresholds,
} from '../src/status/report.js';
import { tinyModel } from './helpers/models.js';
import {
  deletePrefix,
  groupInfo,
  randomPrefix,
  REDIS_URL,
  redisClient,
  until,
} from './helpers/redis.js';
import {
  BIN,
  type ChildWorker,
  spawnWorker,
  startTestWorker,
  stopAllWorkers,
} from './helpers/worker.js';

const redis = redisClient();
const prefixes: string[] = [];
const children: ChildWorker[] = [];
let modelDir: string;

function newPrefix(tag: string) {
  const p = randomPrefix(tag);
  prefixes.push(p);
  return p;
}

/** Run `streambed status` and return its exit code and output. */
function status(
  prefix: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'status', ...args],
      { env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

async function statusJson(prefix: string, args: string[] = []): Promise<StatusReport> {
  const r = await status(prefix, ['--json', '--sample-ms', '0', ...args]);
  expect(r.err).toBe('');
  return JSON.parse(r.out) as StatusReport;
}

beforeAll(async () => {
  modelDir = (await tinyModel({ hidden: 64 })).dir;
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
  await stopAllWorkers();
});
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
});

describe('streambed status', () => {
  it('reports a killed consumer’s pending entries as XPENDING does, and none after reclaim', async () => {
    const prefix = newPrefix('status-kill');
    const k = keys(prefix);
    const stream = k.request('tiny');
    const victimName = `victim-${randomBytes(3).toString('hex')}`;
    const client = new StreambedClient({ redis, prefix });
    try {
      const victim = spawnWorker(prefix, {
        MODELS: `tiny=${modelDir}`,
        CONSUMER_NAME: victimName,
        READ_COUNT: 50,
        BATCH_SIZE: 16,
        CLAIM_IDLE_MS: 60_000,
      });
      children.push(victim);
      await until('victim group', async () => (await groupInfo(redis, stream, k.group)) ?? false);
      const pages = Array.from({ length: 400 }, (_, i) => ({
        id: `p${i}`,
        source: 'kill',
        text: `${'long text '.repeat(60)} ${i}`,
      }));
      await client.submit(pages, { model: 'tiny' });
      await until(
        'victim holds entries',
        async () => ((await redis.xpending(stream, k.group)) as [number])[0] > 0,
        30_000,
        10,
      );
      victim.proc.kill('SIGKILL');
      await victim.exited;

      const [count, minId, , owners] = (await redis.xpending(stream, k.group)) as [
        number,
        string,
        string,
        Array<[string, string]>,
      ];
      expect(count).toBeGreaterThan(0);
      expect(owners).toEqual([[victimName, String(count)]]);
      type Row = [string, string, number, number];
      const before = (await redis.xpending(stream, k.group, '-', '+', 5)) as Row[];
      const report = await statusJson(prefix, ['--models', 'tiny', '--pending-sample', '5']);
      const after = (await redis.xpending(stream, k.group, '-', '+', 5)) as Row[];

      const lane = report.models.find((m) => m.model === 'tiny')?.lanes[0];
      expect(lane?.lane).toBe('interactive');
      expect(lane?.pending).toBe(count);
      const entries = (await groupInfo(redis, stream, k.group))?.['entries-read'];
      expect(lane?.lag).toBe(400 - Number(entries));
      expect(lane?.pendingSample.map((p) => [p.id, p.consumer, p.deliveries])).toEqual(
        before.map(([id, consumer, , n]) => [id, consumer, n]),
      );
      lane?.pendingSample.forEach((p, i) => {
        expect(p.idleMs).toBeGreaterThanOrEqual(before[i]![2]);
        expect(p.idleMs).toBeLessThanOrEqual(after[i]![2]);
        expect(p.ageMs).toBeGreaterThanOrEqual(p.idleMs);
      });
      const v = lane?.consumers.find((c) => c.name === victimName);
      expect(v?.pending).toBe(count);
      expect(v?.oldestPending?.id).toBe(minId);
      expect(v?.oldestPending?.idleMs).toBeGreaterThanOrEqual(before[0]![2]);
      expect(v?.oldestPending?.idleMs).toBeLessThanOrEqual(after[0]![2]);
      expect(lane?.oldestPending?.id).toBe(minId);

      // The text form names the consumer and fits 80 columns.
      const text = await status(prefix, ['--sample-ms', '0']);
      expect(text.code).toBe(0);
      expect(text.out).toContain(victimName);
      for (const line of text.out.split('\n')) expect(line.length).toBeLessThanOrEqual(WIDTH);

      // A live worker reclaims them (delivery 2) and answers everything.
      await startTestWorker(prefix, {
        MODELS: `tiny=${modelDir}`,
        CLAIM_IDLE_MS: 200,
        CLAIM_INTERVAL_MS: 100,
      });
      await until(
        'all answered after reclaim',
        async () => {
          const g = await groupInfo(redis, stream, k.group);
          return g?.['entries-read'] === 400 && g.pending === 0;
        },
        60_000,
      );
      const gone = await statusJson(prefix, ['--models', 'tiny']);
      const l2 = gone.models[0]?.lanes[0];
      expect(l2?.pending).toBe(0);
      expect(l2?.oldestPending).toBeNull();
      expect(l2?.pendingSample).toEqual([]);
      expect(l2?.consumers.find((c) => c.name === victimName)?.pending ?? 0).toBe(0);
      expect(gone.sources.find((s) => s.source === 'kill')).toMatchObject({
        submitted: 400,
        done: 400,
        remaining: 0,
        percent: 100,
        state: 'done',
      });
    } finally {
      await client.close();
    }
  });

  it('--check exits 1 exactly when a threshold is breached', async () => {
    const prefix = newPrefix('status-check');
    const k = keys(prefix);
    const stream = k.request('chk');
    await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
    for (let i = 0; i < 3; i++)
      await redis.xadd(stream, '*', 'id', `e${i}`, 'source', 's', 'text', 'x');
    const read = (await redis.xreadgroup(
      'GROUP',
      k.group,
      'c1',
      'COUNT',
      1,
      'STREAMS',
      stream,
      '>',
    )) as Array<[string, Array<[string, string[]]>]>;
    const id = read[0]![1][0]![0];
    // Pending for 10 minutes, as far as Redis is concerned.
    await redis.xclaim(stream, k.group, 'c1', 0, id, 'IDLE', 600_000);
    for (let i = 0; i < 3; i++) await redis.xadd(k.dlq('chk'), '*', 'reason', 'invalid');
    const now = Date.now();
    await redis.hset(k.progress('fresh'), { submitted: 10, done: 5, last_done_ms: now });
    await redis.hset(k.progress('finished'), {
      submitted: 10,
      done: 10,
      last_done_ms: now - 3_600_000,
    });

    // The thresholds, in process (the CLI's own gather and report code)...
    const kinds = async (t: Partial<Thresholds>) => {
      const thresholds = {
        maxPendingAgeMs: null,
        maxDlq: null,
        ...t,
        staleMs: t.staleMs ?? 600_000,
        activeMs: 60_000,
        liveMs: 30_000,
      };
      const sample = await gatherSample(redis, {
        keys: k,
        pendingSample: 1,
        ...(thresholds.maxPendingAgeMs !== null && { minIdleMs: thresholds.maxPendingAgeMs + 1 }),
      });
      return buildReport(sample, undefined, { prefix, group: k.group, thresholds }).breaches.map(
        (b) => `${b.kind} ${b.subject}`,
      );
    };
    expect(await kinds({})).toEqual([]);
    expect(await kinds({ maxPendingAgeMs: 900_000, maxDlq: 3 })).toEqual([]);
    expect(await kinds({ maxPendingAgeMs: 590_000 })).toEqual([`pending_age ${stream}`]);
    expect(await kinds({ maxDlq: 2 })).toEqual([`dlq ${k.dlq('chk')}`]);

    // ...and through the CLI: flags, defaults (pending age 5 min, DLQ off) and exit codes.
    const check = async (args: string[]) => {
      const r = await status(prefix, ['--check', '--json', ...args]);
      const report = JSON.parse(r.out) as StatusReport;
      return { code: r.code, kinds: report.breaches.map((b) => `${b.kind} ${b.subject}`) };
    };
    expect(await check(['--max-pending-age-ms', 'off', '--max-dlq', '3'])).toEqual({
      code: 0,
      kinds: [],
    });
    expect(await check(['--max-dlq', '2'])).toEqual({
      code: 1,
      kinds: [`pending_age ${stream}`, `dlq ${k.dlq('chk')}`],
    });

    // Work left and nothing finished for 20 minutes: stale after the default 10.
    await redis.hset(k.progress('stuck'), {
      submitted: 10,
      done: 4,
      last_done_ms: now - 1_200_000,
    });
    expect(await kinds({})).toEqual(['stale stuck']);
    expect(await kinds({ staleMs: 3_600_000 })).toEqual([]);
    const text = await status(prefix, ['--check', '--max-pending-age-ms', 'off']);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(/BREACHED \(1\)\n {2}stale: source stuck/);
    const states = (await statusJson(prefix)).sources.map((s) => [s.source, s.state]);
    expect(states).toEqual([
      ['finished', 'done'],
      ['fresh', 'active'],
      ['stuck', 'stale'],
    ]);
  });

  it('--watch refreshes with rates until interrupted', async () => {
    const prefix = newPrefix('status-watch');
    const k = keys(prefix);
    await redis.hset(k.progress('w'), { submitted: 100, done: 0 });
    const proc = spawn(
      process.execPath,
      [BIN, 'status', '--watch', '--json', '--interval-ms', '150'],
      {
        env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    try {
      const frames = () =>
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as StatusReport);
      await until('first frame', () => frames().length >= 1, 20_000);
      await redis.hset(k.progress('w'), { done: 40, last_done_ms: Date.now() });
      const later = await until('a frame with the new count and a rate', () =>
        frames().find((f) => f.sources[0]?.done === 40 && f.rateWindowMs !== null),
      );
      const s = later.sources[0]!;
      expect(s.ratePerSec).toBeGreaterThan(0);
      expect(s.etaSec).toBe(Math.ceil(60 / s.ratePerSec!));
      expect(s.state).toBe('active');
      proc.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});

describe('status report', () => {
  const thresholds = {
    maxPendingAgeMs: 1000,
    maxDlq: 0,
    staleMs: 600_000,
    activeMs: 60_000,
    liveMs: 30_000,
  };

  it('classifies sources', () => {
    expect(sourceState(0, null, thresholds)).toBe('done');
    expect(sourceState(5, 1_000, thresholds)).toBe('active');
    expect(sourceState(5, 120_000, thresholds)).toBe('idle');
    expect(sourceState(5, 700_000, thresholds)).toBe('stale');
    expect(sourceState(5, null, thresholds)).toBe('waiting');
    expect(sourceState(null, 700_000, thresholds)).toBe('idle');
    expect(sourceState(null, 10, thresholds)).toBe('active');
  });

  it('derives rates and ETA from two samples and renders them on 80 columns', () => {
    const stream = (entriesRead: number, pending: number) => ({
      lane: 'interactive' as const,
      source: null,
      stream: 'sb:req:a-model-with-a-rather-long-name',
      read: {
        exists: true,
        length: 123_456_789,
        group: { lag: 99_999_999, pending, entriesRead, consumers: 3, lastDeliveredId: '1-0' },
        pending: [{ id: '1000-0', consumer: 'c', idleMs: 90_061_000, deliveries: 2 }],
      },
      consumers: [
        {
          name: 'a-consumer-name-far-longer-than-any-column-could-hold-1234567890',
          pending,
          idleMs: 5,
          inactiveMs: null,
          oldest: { id: '1000-0', consumer: 'c', idleMs: 90_061_000, deliveries: 2 },
        },
      ],
      overIdle: null,
    });
    const sample = (atMs: number, done: number, read: number): Sample => ({
      atMs,
      models: [
        {
          model: 'a-model-with-a-rather-long-name',
          dlq: 'sb:dlq:x',
          dlqLength: 7,
          provider: null,
          streams: [stream(read, 10)],
        },
      ],
      sources: [
        {
          source: 'a-source-with-a-very-long-name',
          progress: {
            submitted: 250_000,
            done,
            failed: 3,
            deduped: 0,
            replayed: 0,
            lastDoneMs: atMs - 500,
          },
        },
      ],
      jobs: [],
    });
    const r = buildReport(sample(12_000, 100_000, 5_000), sample(10_000, 90_000, 4_000), {
      prefix: 'sb',
      group: 'sb-workers',
      thresholds,
    });
    expect(r.rateWindowMs).toBe(2000);
    expect(r.models[0]?.lanes[0]?.ratePerSec).toBe(500);
    const s = r.sources[0]!;
    expect(s.ratePerSec).toBe(5000);
    expect(s.remaining).toBe(250_000 - 100_003);
    expect(s.etaSec).toBe(Math.ceil(149_997 / 5000));
    expect(r.breaches.map((b) => b.kind)).toEqual(['dlq']);
    const text = renderText(r);
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(WIDTH);
    expect(text).toContain('123.5M');
    expect(text).toContain('1d01h');
  });

  it('derives a job’s rate and ETA from two samples, and no ETA once done', () => {
    const job = (answered: number, failed: number) => ({
      job: 'j',
      submitted: 1000,
      answered,
      failed,
      firstRequestMs: 1_000,
      lastAnswerMs: 9_000 + answered,
    });
    const sample = (atMs: number, answered: number, failed: number): Sample => ({
      atMs,
      models: [],
      sources: [
        {
          source: 's',
          progress: {
            submitted: 10,
            done: 8,
            failed: 2,
            deduped: 0,
            replayed: 0,
            lastDoneMs: atMs,
          },
        },
      ],
      jobs: [job(answered, failed)],
    });
    const ctx = { prefix: 'sb', group: 'g', thresholds };
    const running = buildReport(sample(12_000, 600, 5), sample(10_000, 400, 2), ctx);
    expect(running.jobs[0]).toMatchObject({
      ok: 595,
      failed: 5,
      remaining: 400,
      percent: 60,
      ratePerSec: 100,
      etaSec: 4,
      startedMs: 1_000,
      finishedMs: null,
      state: 'active',
    });
    // A finished source or job has no ETA (not 0), and the job its finish time.
    expect(running.sources[0]).toMatchObject({ finished: 10, remaining: 0, etaSec: null });
    const done = buildReport(sample(14_000, 1000, 7), sample(12_000, 600, 5), ctx);
    expect(done.jobs[0]).toMatchObject({ remaining: 0, etaSec: null, finishedMs: 10_000 });
    expect(done.jobs[0]?.state).toBe('done');
    const text = renderText(done);
    expect(text).toMatch(/^j +1000 +1000 +7 +100\.0 +200\.0 +- +9s +done$/m);
    expect(text).toMatch(/^s +8 +2 +10 +100\.0 +0\.0 +- +0ms +done$/m);
    expect(text).not.toContain('REPLAY');
    // Replays add their column (the failures they cured are no longer in FAIL).
    const replayed = sample(14_000, 1000, 7);
    Object.assign(replayed.sources[0]!.progress, { failed: 1, done: 9, replayed: 1 });
    const withReplays = renderText(buildReport(replayed, sample(12_000, 600, 5), ctx));
    expect(withReplays).toMatch(/^SOURCE +OK +FAIL +REPLAY +TOTAL/m);
    expect(withReplays).toMatch(/^s +9 +1 +1 +10 +100\.0/m);
  });
});
