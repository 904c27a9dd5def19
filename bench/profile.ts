/**
 * `node dist/bench/profile.js [--corpora ...] [--env KEY=VALUE ...]`: where
 * streambed's end-to-end time goes, against the compute limit, per corpus.
 *
 * The worker runs in a child under `node --cpu-prof` (one profile per
 * thread), with the same startWorker as `streambed worker`, so its events
 * can be counted. For each corpus it reports micro-batch fill and padding,
 * thread busy time, batches in flight, main-thread event-loop use, raw ORT
 * time for the very batch shapes streambed formed, and the CPU profile of
 * each thread over the measured window. `--env` passes worker settings
 * (e.g. --env MAX_BATCH_TOKENS=1024 --env IN_FLIGHT_BATCHES=6) to try them.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

import { StreambedClient } from '../src/client/client.js';
import { ComputeLimitCase, PACKINGS } from './cases/compute-limit.js';
import { collectResults, deletePrefix } from './cases/redis-util.js';
import { RoleChild } from './child.js';
import { type Corpus, corpusSize, generateCorpus, loadTokenizer, warmupTexts } from './corpus.js';
import { readProfileDir, type ThreadProfile } from './cpuprofile.js';
import { loadavg } from './machine.js';
import { ensureModel } from './model.js';
import { CORPORA, type CorpusName } from './options.js';
import type { WorkerWindow } from './roles/streambed-worker.js';
import { round } from './stats.js';

const MODEL = 'bench';

interface CorpusProfile {
  corpus: CorpusName;
  texts: number;
  streambedPerSecond: number;
  limitPerSecond: number;
  limitPacking: unknown;
  ratio: number;
  batches: {
    count: number;
    meanTexts: number;
    textsHistogram: Record<string, number>;
    meanPaddedTokens: number;
    paddingWaste: number;
  };
  /**
   * Raw ORT on the batch shapes streambed formed, run right after the limit
   * in the same process, over the limit's time: what streambed's packing
   * costs in model compute alone (1 = as good as the best packing).
   */
  shapeCost: number;
  /** Share of worker-thread time inside ORT's run, from the CPU profiles (undefined without them). */
  ortShare?: number;
  /** What the accounting predicts for streambed/limit: ortShare x threadBusy / shapeCost. */
  predictedRatio?: number;
  threadBusy: number;
  mainElu: number;
  mainCpu?: number;
  /** Share of the window with k threads computing, k = 0..threads. */
  busyThreads: number[];
  profiles: ThreadProfile[];
  loadavg1: number;
}

function parse() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      corpora: { type: 'string', default: CORPORA.join(',') },
      dtype: { type: 'string', default: 'q8' },
      seed: { type: 'string', default: '7' },
      scale: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: 'profile' },
      'no-cpu-prof': { type: 'boolean', default: false },
      'model-dir': { type: 'string', default: '.streambed/bench/models' },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    },
  });
  const corpora = values.corpora.split(',').map((c) => {
    if (!(CORPORA as readonly string[]).includes(c)) throw new Error(`--corpora: unknown ${c}`);
    return c as CorpusName;
  });
  if (values.dtype !== 'q8' && values.dtype !== 'fp32') throw new Error('--dtype: q8 or fp32');
  const env: Record<string, string> = {};
  for (const kv of values.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--env ${kv}: expected KEY=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(values.out)) throw new Error('--out: a plain file name');
  return {
    corpora,
    dtype: values.dtype as 'q8' | 'fp32',
    seed: Number(values.seed),
    scale: Number(values.scale),
    quick: values.quick,
    env,
    out: values.out,
    cpuProf: !values['no-cpu-prof'],
    modelDir: values['model-dir'],
    redisUrl: values['redis-url'],
  };
}

/** From each batch's end time and duration: share of the window with k threads busy. */
function busyShares(w: WorkerWindow): number[] {
  const edges: Array<[number, number]> = [];
  for (const b of w.batches) edges.push([Math.max(0, b.at - b.ms), 1], [b.at, -1]);
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const total = w.seconds * 1000;
  const shares = new Array<number>(w.threads + 1).fill(0);
  let t = 0;
  let busy = 0;
  for (const [at, step] of edges) {
    const k = Math.min(w.threads, busy);
    shares[k] = (shares[k] ?? 0) + (Math.min(at, total) - t);
    t = Math.min(at, total);
    busy += step;
  }
  shares[0] = (shares[0] ?? 0) + (total - t);
  return shares.map((x) => x / total);
}

function bucket(n: number): string {
  if (n === 1) return '1';
  if (n <= 4) return '2-4';
  if (n <= 8) return '5-8';
  if (n <= 16) return '9-16';
  return '17+';
}

async function main(): Promise<void> {
  const o = parse();
  const model = await ensureModel(o.modelDir, o.dtype);
  const tokenizer = await loadTokenizer(model.dir);
  const corpora: Corpus[] = o.corpora.map((n) =>
    generateCorpus(n, corpusSize(n, o.quick, o.scale), o.seed, tokenizer),
  );
  const warm = warmupTexts(corpora);
  const nproc = os.availableParallelism();
  const prefix = `sbprof-${randomBytes(3).toString('hex')}`;
  const profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-cpuprof-'));
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 3 });
  const client = new StreambedClient({ redis, prefix });
  const replyTo = `${prefix}:reply:p/profile`;

  const limit = new ComputeLimitCase(
    model.onnxFile,
    nproc,
    1,
    warm.map((t) => tokenizer.encode(t) as number[]),
    PACKINGS,
    o.quick ? 4 : 0,
  );
  await limit.start();
  const env = {
    REDIS_URL: o.redisUrl,
    KEY_PREFIX: prefix,
    MODELS: `${MODEL}=${model.dir};dtype=${o.dtype}`,
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    ALLOW_REMOTE_MODELS: 'false',
    DEDUPE_TTL_S: '0',
    ...o.env,
  };
  console.log(`worker env: ${JSON.stringify(o.env)}; cpu profiles in ${profDir}`);
  const worker = await RoleChild.start(
    'streambed',
    'streambed-worker',
    { env },
    {
      execArgv: o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    },
  );

  const pass = async (texts: readonly string[], tag: string) => {
    const reader = redis.duplicate();
    const started = performance.now();
    const rids: string[] = [];
    for (let s = 0; s < texts.length; s += 1000) {
      const pages = texts
        .slice(s, s + 1000)
        .map((text, k) => ({ id: `${tag}-${s + k}`, source: 'p', text }));
      rids.push(...(await client.submit(pages, { model: MODEL, replyTo })));
    }
    const got = await collectResults(reader, replyTo, new Set(rids), {
      stallMs: 60_000,
      dead: () => worker.dead(),
    });
    reader.disconnect();
    await redis.del(replyTo);
    await redis.xtrim(client.keys.request(MODEL), 'MAXLEN', 0);
    return (got.doneAt - started) / 1000;
  };

  const results: CorpusProfile[] = [];
  const windows: Array<{
    corpus: CorpusName;
    w: WorkerWindow;
    partial: Omit<CorpusProfile, 'profiles'>;
  }> = [];
  try {
    await pass(warm, 'warm');
    for (const corpus of corpora) {
      const loadavg1 = loadavg()[0] ?? 0;
      await worker.call('begin');
      const seconds = await pass(corpus.texts, corpus.name);
      const w = await worker.call<WorkerWindow>('end');
      const lim = await limit.run(corpus);
      const shapes = w.batches.map((b): [number, number] => [b.texts, b.paddedTokens / b.texts]);
      const raw = await limit.runShapes(shapes);
      const threads = w.threads;
      const batchMs = w.batches.reduce((a, b) => a + b.ms, 0);
      const tokens = w.batches.reduce((a, b) => a + b.tokens, 0);
      const padded = w.batches.reduce((a, b) => a + b.paddedTokens, 0);
      const hist: Record<string, number> = {};
      for (const b of w.batches) hist[bucket(b.texts)] = (hist[bucket(b.texts)] ?? 0) + 1;
      const limitWall = corpus.texts.length / lim.perSecond;
      windows.push({
        corpus: corpus.name,
        w,
        partial: {
          corpus: corpus.name,
          texts: corpus.texts.length,
          streambedPerSecond: round(corpus.texts.length / seconds, 1),
          limitPerSecond: round(lim.perSecond, 1),
          limitPacking: lim.detail?.packing,
          ratio: round(corpus.texts.length / seconds / lim.perSecond, 3),
          batches: {
            count: w.batches.length,
            meanTexts: round(corpus.texts.length / Math.max(1, w.batches.length), 2),
            textsHistogram: hist,
            meanPaddedTokens: round(padded / Math.max(1, w.batches.length), 0),
            paddingWaste: round(1 - tokens / Math.max(1, padded), 3),
          },
          shapeCost: round(raw.seconds / limitWall, 3),
          threadBusy: round(batchMs / 1000 / threads / seconds, 3),
          mainElu: round(w.mainElu, 3),
          ...(w.mainCpu !== undefined && { mainCpu: round(w.mainCpu, 3) }),
          busyThreads: busyShares(w).map((x) => round(x, 3)),
          loadavg1,
        },
      });
      console.log(
        `${corpus.name}: streambed ${round(corpus.texts.length / seconds, 1)}/s, limit ${round(lim.perSecond, 1)}/s`,
      );
    }
  } finally {
    await worker.stop();
    await limit.stop();
    await client.close();
    await deletePrefix(redis, prefix);
    await redis.quit();
  }
  for (const { w, partial } of windows) {
    const profiles = o.cpuProf
      ? readProfileDir(profDir, w.window).filter((p) => p.categories.length > 0)
      : [];
    // Worker threads are the profiles mostly in ORT; busy = not waiting for a task.
    const shares = profiles.flatMap((p) => {
      const total = p.categories.reduce((a, [, ms]) => a + ms, 0);
      const ort = p.categories
        .filter(([c]) => c === 'onnxruntime js' || c === 'ort run (native)')
        .reduce((a, [, ms]) => a + ms, 0);
      const waiting = p.categories.find(([c]) => c === 'waiting for a task')?.[1] ?? 0;
      return ort > total / 2 ? [ort / Math.max(1, total - waiting)] : [];
    });
    const ortShare = shares.length
      ? round(shares.reduce((a, b) => a + b, 0) / shares.length, 3)
      : undefined;
    results.push({
      ...partial,
      ...(ortShare !== undefined && {
        ortShare,
        predictedRatio: round((ortShare * partial.threadBusy) / partial.shapeCost, 3),
      }),
      profiles,
    });
  }
  for (const r of results) printProfile(r);
  const file = path.join('bench', 'results', `${o.out}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    `${JSON.stringify({ env: o.env, dtype: o.dtype, nproc, results }, null, 2)}\n`,
  );
  console.log(`\nwrote ${file}; raw profiles in ${profDir} (open in Chrome DevTools)`);
}

function printProfile(r: CorpusProfile): void {
  console.log(
    `\n== ${r.corpus}: ${r.texts} texts, streambed ${r.streambedPerSecond}/s vs limit ${r.limitPerSecond}/s (${String(r.limitPacking)}) = ${r.ratio} (loadavg ${r.loadavg1})`,
  );
  console.log(
    `batches ${r.batches.count}, mean ${r.batches.meanTexts} texts, ${r.batches.meanPaddedTokens} padded tokens, padding waste ${(r.batches.paddingWaste * 100).toFixed(1)}%, texts/batch ${JSON.stringify(r.batches.textsHistogram)}`,
  );
  console.log(
    `raw ORT on streambed's batch shapes costs ${r.shapeCost}x the best packing; ORT is ${r.ortShare === undefined ? '-' : `${(r.ortShare * 100).toFixed(1)}%`} of busy thread time; predicted streambed/limit ${r.predictedRatio ?? '-'} (measured ${r.ratio})`,
  );
  console.log(
    `threads busy ${(r.threadBusy * 100).toFixed(1)}% (time with k threads computing: ${r.busyThreads.map((x, k) => `${k}:${(x * 100).toFixed(0)}%`).join(' ')}), main thread: event loop ${(r.mainElu * 100).toFixed(1)}% busy, CPU ${r.mainCpu === undefined ? '-' : `${(r.mainCpu * 100).toFixed(1)}%`}`,
  );
  for (const p of r.profiles) {
    const total = p.categories.reduce((a, [, ms]) => a + ms, 0);
    const cats = p.categories
      .slice(0, 8)
      .map(([c, ms]) => `${c} ${((ms / Math.max(1, total)) * 100).toFixed(1)}%`)
      .join(', ');
    console.log(`  ${p.file} (${p.wallMs} ms): ${cats}`);
    for (const [fn, ms] of p.top.slice(0, 6))
      console.log(`      ${String(ms).padStart(6)} ms  ${fn}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
