/**
 * Backfill at scale (issue 19): `streambed backfill` of a generated JSONL
 * corpus into a fleet of no-op workers, measuring pages/s, the CLI's peak
 * RSS, the Redis memory the job leaves per page (every key under the run's
 * prefix, by MEMORY USAGE, so other users of the same Redis do not count),
 * and a resume: the CLI SIGKILLed at 50 % and re-run with --wait (time to
 * its plan line, total time, and whether any page was submitted twice).
 *
 *   npm run build && node dist/bench/backfill.js --pages 100000 --reply status
 *
 * Options: --pages N (100000), --reply status|vectors (status), --workers N
 * (2), --model REF (noop:384), --redis-url URL, --bin PATH (another build's
 * bin/streambed.js as the CLI: a baseline), --sink SINK (for the workers).
 * Not part of `npm run bench`:
 * a million pages takes minutes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

import { keys } from '../src/keys.js';

const BIN = fileURLToPath(new URL('../../bin/streambed.js', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    pages: { type: 'string', default: '100000' },
    reply: { type: 'string', default: 'status' },
    workers: { type: 'string', default: '2' },
    model: { type: 'string', default: 'noop:384' },
    // Another build's bin/streambed.js for the CLI (a baseline: no --reply flag there).
    bin: { type: 'string' },
    // A SINK for the workers (pglite:DIR takes one worker: the folder is locked).
    sink: { type: 'string' },
    'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const N = Number(opt.pages);
const REDIS_URL = opt['redis-url'];
const prefix = `sbbench-bf-${randomBytes(3).toString('hex')}`;
const k = keys(prefix);
const redis = new Redis(REDIS_URL);

/** ~70-byte pages, one a line; kept between runs of the same size. */
function corpus(n: number): string {
  const file = path.join(os.tmpdir(), `sb-bench-backfill-${n}.jsonl`);
  if (fs.existsSync(file)) return file;
  const fd = fs.openSync(`${file}.tmp`, 'w');
  let buf = '';
  for (let i = 0; i < n; i++) {
    buf += `${JSON.stringify({ id: `page-${i}`, text: `page ${i} of the benchmark corpus, a few words` })}\n`;
    if (buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  }
  fs.writeSync(fd, buf);
  fs.closeSync(fd);
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

function startWorkers(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, [BIN, 'worker'], {
      env: {
        ...process.env,
        REDIS_URL,
        KEY_PREFIX: prefix,
        MODELS: `nop=${opt.model}`,
        THREADS: '1',
        METRICS_PORT: '0',
        LOG_LEVEL: 'warn',
        // Request streams trimmed every second, so what stays is the job's own record.
        TRIM_INTERVAL_MS: '1000',
        ...(opt.sink !== undefined && { SINK: opt.sink }),
      },
      stdio: 'ignore',
    }),
  );
}

interface CliRun {
  code: number | null;
  seconds: number;
  /** Peak RSS (VmHWM), MB. */
  peakMb: number;
  /** Seconds from start to the plan line (the resume scan). */
  planSeconds: number | undefined;
  out: string;
}

/** Run the backfill CLI, sampling its peak RSS; `killWhen` SIGKILLs it once true. */
async function backfill(
  job: string,
  extra: string[],
  killWhen?: () => Promise<boolean>,
): Promise<CliRun> {
  const started = performance.now();
  const args = [opt.bin ?? BIN, 'backfill', corpus(N), '-m', 'nop', '--job', job, '--source', job];
  const reply = opt.bin ? [] : ['--reply', opt.reply as string];
  const proc = spawn(process.execPath, [...args, ...reply, ...extra], {
    env: { ...process.env, REDIS_URL, KEY_PREFIX: prefix, BACKFILL_REPLY_TTL_S: '3600' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let out = '';
  let planSeconds: number | undefined;
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString();
    if (planSeconds === undefined && out.includes('to submit'))
      planSeconds = (performance.now() - started) / 1000;
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  let peakKb = 0;
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    try {
      const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    } catch {
      // Exited between the check and the read.
    }
    if (killWhen && (await killWhen())) proc.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
  const code = await exited;
  return {
    code,
    seconds: (performance.now() - started) / 1000,
    peakMb: peakKb / 1024,
    planSeconds,
    out,
  };
}

/** Bytes of every key under the prefix (MEMORY USAGE ... SAMPLES 0: exact for streams and sets). */
async function prefixBytes(): Promise<number> {
  let total = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of found) total += Number(await redis.memory('USAGE', key, 'SAMPLES', 0));
  } while (cursor !== '0');
  return total;
}

async function entriesAdded(stream: string): Promise<number> {
  const info = (await redis.xinfo('STREAM', stream)) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

/**
 * Answers the resume job got (entries-added counts those trimmed away too), on
 * its stream under the source or, run by an earlier `--bin`, on its one stream.
 */
const answered = async () =>
  (await entriesAdded(k.backfillReply('resume', 'resume')).catch(() => 0)) +
  (await entriesAdded(k.legacyBackfillReply('resume')).catch(() => 0));

async function main(): Promise<void> {
  corpus(N);
  const workers = startWorkers(Number(opt.workers));
  try {
    for (;;) {
      const groups = (await redis.xinfo('GROUPS', k.request('nop')).catch(() => [])) as unknown[];
      if (groups.length > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const before = await prefixBytes();
    const full = await backfill('full', ['--wait']);
    await new Promise((r) => setTimeout(r, 2500)); // a trim pass of the request streams
    const after = await prefixBytes();

    const killed = await backfill('resume', [], async () => (await answered()) >= N / 2);
    const atKill = await answered();
    const resumed = await backfill('resume', ['--wait']);
    const sent = await entriesAdded(k.bulkSource('nop', 'resume'));
    const result = {
      pages: N,
      reply: opt.bin ? `baseline ${opt.bin}` : opt.reply,
      sink: opt.sink ?? null,
      model: opt.model,
      workers: Number(opt.workers),
      full: {
        code: full.code,
        seconds: full.seconds,
        pagesPerS: N / full.seconds,
        cliPeakMb: full.peakMb,
      },
      redisBytesPerPage: (after - before) / N,
      redisBytesAfter: after,
      resume: {
        answeredAtKill: atKill,
        killedRunSeconds: killed.seconds,
        planSeconds: resumed.planSeconds,
        seconds: resumed.seconds,
        code: resumed.code,
        cliPeakMb: resumed.peakMb,
        plan: /\d+ already answered.*to submit/.exec(resumed.out)?.[0],
        submittedInAll: sent,
        submittedTwice: sent - N,
      },
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(
      workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.on('exit', r)))),
    );
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await redis.del(...found);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

await main();
