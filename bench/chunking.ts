/**
 * What the fleet's chunking costs (issue 16): pages of ~2,000 tokens sent as
 * one `text` with `chunk: {window, overlap}`, against the very same chunks
 * split by the producer and sent as `texts`, through one real `streambed
 * worker` child on the generated MiniLM-shaped model. Runs alternate
 * (chunked, pre-split, chunked, ...) so both see the same machine; reported
 * as pages/s and worker CPU seconds per page, and their ratios.
 *
 *   npm run build && node dist/bench/chunking.js [--pages 40] [--rounds 3] [--window 256] [--overlap 32]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';

import { chunkPage } from '../src/chunking/page-chunker.js';
import { modelTokenizer } from '../src/chunking/tokenizers.js';
import { StreambedClient } from '../src/client/client.js';
import type { Page } from '../src/types.js';
import { encodeText, loadTokenizer } from '../workers/tokenize.js';
import { cpuSeconds } from './machine.js';
import { ensureModel } from './model.js';
import { WORDS } from './words.js';

const BIN = fileURLToPath(new URL('../../bin/streambed.js', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    pages: { type: 'string', default: '40' },
    tokens: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    window: { type: 'string', default: '256' },
    overlap: { type: 'string', default: '32' },
    'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const window = Number(opt.window);
const overlap = Number(opt.overlap);
const prefix = `sbbench-chunk-${randomBytes(3).toString('hex')}`;
const redis = new Redis(opt['redis-url']);

const model = await ensureModel('.streambed/bench/models', 'q8');
const { tokenizer } = await loadTokenizer({ ref: model.dir, local: true, allowRemote: false });
const tokensOf = (text: string) => tokenizer.encode(text).length;

/** Pages of sentences and paragraphs, each at least `tokens` long under the model's tokenizer. */
function page(i: number, tokens: number): string {
  const words = WORDS;
  const paragraphs: string[] = [];
  let n = i * 7919;
  for (;;) {
    const sentences = Array.from({ length: 5 }, () => {
      const s = Array.from({ length: 12 }, () => words[n++ % words.length]).join(' ');
      return `${s[0]?.toUpperCase()}${s.slice(1)}.`;
    });
    paragraphs.push(sentences.join(' '));
    const text = paragraphs.join('\n\n');
    if (tokensOf(text) >= tokens) return text;
  }
}

const texts = Array.from({ length: Number(opt.pages) }, (_, i) => page(i, Number(opt.tokens)));
const tok = modelTokenizer(tokenizer, (t) => encodeText(tokenizer, t, 512));
// The producer's split: the same chunker the worker runs, so both paths compute the same texts.
const preSplit = texts.map((t) => {
  const c = chunkPage(t, { window, overlap, maxChunks: 10_000 }, tok);
  if ('tooMany' in c) throw new Error('too many chunks');
  return c.texts;
});
const chunks = preSplit.reduce((n, c) => n + c.length, 0);

const worker = startWorker();
const client = new StreambedClient({ redis, prefix });
try {
  await worker.ready;
  await pass('warm', (i) => ({ id: `w${i}`, source: 'bench', texts: preSplit[i] as string[] }));
  const rows: Array<{ variant: string; seconds: number; cpu: number }> = [];
  for (let r = 0; r < Number(opt.rounds); r++) {
    for (const variant of ['chunked', 'pre-split'] as const) {
      const cpu0 = cpuSeconds(worker.proc.pid ?? -1) ?? 0;
      const seconds = await pass(`${variant}-${r}`, (i) =>
        variant === 'chunked'
          ? { id: `c${i}`, source: 'bench', text: texts[i] as string, chunk: { window, overlap } }
          : { id: `p${i}`, source: 'bench', texts: preSplit[i] as string[] },
      );
      const cpu = (cpuSeconds(worker.proc.pid ?? -1) ?? 0) - cpu0;
      rows.push({ variant, seconds, cpu });
      console.log(
        `${variant.padEnd(9)} round ${r + 1}: ${(texts.length / seconds).toFixed(2)} pages/s, worker CPU ${((cpu / texts.length) * 1000).toFixed(1)} ms/page`,
      );
    }
  }
  const best = (v: string, f: (r: (typeof rows)[number]) => number) =>
    Math.min(...rows.filter((r) => r.variant === v).map(f));
  const [cs, ps] = [best('chunked', (r) => r.seconds), best('pre-split', (r) => r.seconds)];
  const [cc, pc] = [best('chunked', (r) => r.cpu), best('pre-split', (r) => r.cpu)];
  console.log(
    `\n${texts.length} pages of >=${opt.tokens} tokens, ${chunks} chunks (window ${window}, overlap ${overlap}), best of ${opt.rounds}:\n` +
      `  chunked by the fleet : ${(texts.length / cs).toFixed(2)} pages/s, worker CPU ${((cc / texts.length) * 1000).toFixed(1)} ms/page\n` +
      `  pre-split (texts)    : ${(texts.length / ps).toFixed(2)} pages/s, worker CPU ${((pc / texts.length) * 1000).toFixed(1)} ms/page\n` +
      `  chunked / pre-split  : pages/s ${(ps / cs).toFixed(3)}, CPU per page ${(cc / pc).toFixed(3)}`,
  );
} finally {
  await client.close();
  worker.proc.kill('SIGTERM');
  await worker.exited;
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
}

/** Submit every page in the given form and wait for all answers; seconds from submit to the last. */
async function pass(tag: string, pageOf: (i: number) => Page): Promise<number> {
  const replyTo = `${prefix}:reply:bench/${tag}`;
  const started = performance.now();
  await client.submit(
    texts.map((_, i) => pageOf(i)),
    { model: 'bench', replyTo },
  );
  let seen = 0;
  const deadline = Date.now() + 300_000;
  while (seen < texts.length) {
    if (Date.now() > deadline) throw new Error(`${tag}: ${seen}/${texts.length} answered in 5 min`);
    const entries = (await redis.xrange(replyTo, '-', '+')) as Array<[string, string[]]>;
    const bad = entries.find(([, f]) => f[f.indexOf('status') + 1] !== 'ok');
    if (bad) throw new Error(`${tag}: a page failed`);
    seen = entries.length;
    if (seen < texts.length) await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await redis.del(replyTo);
  return seconds;
}

function startWorker(): { proc: ChildProcess; ready: Promise<void>; exited: Promise<unknown> } {
  const proc = spawn(process.execPath, [BIN, 'worker'], {
    env: {
      ...process.env,
      REDIS_URL: opt['redis-url'],
      KEY_PREFIX: prefix,
      MODELS: `bench=${model.dir};dtype=q8`,
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      DEDUPE_TTL_S: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out = (out + d.toString()).slice(-10_000);
      if (out.includes('"msg":"worker reading"')) resolve();
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    void exited.then(() => reject(new Error(`worker exited: ${out}`)));
  });
  return { proc, ready, exited };
}
