/**
 * `node dist/bench/what-if.js [--quick]`: what other packing policies would
 * cost in model compute, before anyone changes the worker. For each corpus,
 * texts arrive in order and are packed a window at a time (as the read loop
 * packs one read), under each policy; the resulting batch shapes run on raw
 * ORT (the compute-limit case, nproc threads x 1) right after the best
 * packing of the whole corpus, and the report gives each policy's time over
 * that best. 1.00 = as good as the limit's packing; streambed's end-to-end
 * ratio cannot beat 1 / this number.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { estimateTokens, packBatches } from '../src/worker/batcher.js';
import { ComputeLimitCase, PACKINGS } from './cases/compute-limit.js';
import { corpusSize, generateCorpus, loadTokenizer, warmupTexts } from './corpus.js';
import { ensureModel } from './model.js';
import { CORPORA } from './options.js';
import { round } from './stats.js';

interface Policy {
  name: string;
  /** Entries packed together (one read, or a sorting buffer). */
  window: number;
  exact: boolean;
  maxBatchTokens: number;
  batchSize: number;
  /** Close a batch when its shortest text is below this share of the next (longest) one. */
  minFill?: number;
}

const POLICIES: Policy[] = [
  {
    name: 'estimate, reads of 4, 1024 tokens (HEAD-like, mixed/long)',
    window: 4,
    exact: false,
    maxBatchTokens: 1024,
    batchSize: 32,
  },
  {
    name: 'estimate, reads of 32, 1024 tokens',
    window: 32,
    exact: false,
    maxBatchTokens: 1024,
    batchSize: 32,
  },
  {
    name: 'estimate, reads of 32, 512 tokens',
    window: 32,
    exact: false,
    maxBatchTokens: 512,
    batchSize: 32,
  },
  {
    name: 'estimate, reads of 32, 512, fill >= 0.85',
    window: 32,
    exact: false,
    maxBatchTokens: 512,
    batchSize: 32,
    minFill: 0.85,
  },
  {
    name: 'exact, reads of 4, 512, fill >= 0.85',
    window: 4,
    exact: true,
    maxBatchTokens: 512,
    batchSize: 32,
    minFill: 0.85,
  },
  {
    name: 'exact, reads of 32, 512, fill >= 0.85',
    window: 32,
    exact: true,
    maxBatchTokens: 512,
    batchSize: 32,
    minFill: 0.85,
  },
  {
    name: 'exact, window of 128, 512, fill >= 0.85',
    window: 128,
    exact: true,
    maxBatchTokens: 512,
    batchSize: 32,
    minFill: 0.85,
  },
];

interface Item {
  tokens: number;
  exact: number;
}

/** packBatches, plus an optional bound on padding: a batch closes when its shortest text would fall under minFill of the longest. */
function pack(items: Item[], p: Policy): Item[][] {
  const limits = { maxBatchTokens: p.maxBatchTokens, batchSize: p.batchSize };
  const batches = packBatches(items, limits);
  if (p.minFill === undefined) return batches;
  const out: Item[][] = [];
  for (const b of batches) {
    let current: Item[] = [];
    for (const item of b) {
      const first = current[0];
      if (first && first.tokens < p.minFill * item.tokens) {
        out.push(current);
        current = [];
      }
      current.push(item);
    }
    if (current.length) out.push(current);
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      seed: { type: 'string', default: '7' },
      'model-dir': { type: 'string', default: '.streambed/bench/models' },
    },
  });
  const model = await ensureModel(values['model-dir'], 'q8');
  const tokenizer = await loadTokenizer(model.dir);
  const corpora = CORPORA.map((n) =>
    generateCorpus(n, corpusSize(n, values.quick, 1), Number(values.seed), tokenizer),
  );
  const limit = new ComputeLimitCase(
    model.onnxFile,
    os.availableParallelism(),
    1,
    warmupTexts(corpora).map((t) => tokenizer.encode(t) as number[]),
    PACKINGS,
    4,
  );
  await limit.start();
  const out: Array<Record<string, unknown>> = [];
  try {
    for (const corpus of corpora) {
      const best = await limit.run(corpus);
      const bestSeconds = corpus.texts.length / best.perSecond;
      console.log(
        `\n${corpus.name}: best packing ${String(best.detail?.packing)}, ${round(best.perSecond, 1)} texts/s`,
      );
      for (const p of POLICIES) {
        const shapes: Array<[number, number]> = [];
        let real = 0;
        let padded = 0;
        for (let start = 0; start < corpus.texts.length; start += p.window) {
          const items = corpus.ids.slice(start, start + p.window).map((ids, k) => ({
            exact: ids.length,
            tokens: p.exact ? ids.length : estimateTokens(corpus.texts[start + k] as string, 512),
          }));
          for (const b of pack(items, p)) {
            const len = Math.max(...b.map((i) => i.exact));
            shapes.push([b.length, len]);
            real += b.reduce((a, i) => a + i.exact, 0);
            padded += b.length * len;
          }
        }
        const raw = await limit.runShapes(shapes);
        out.push({
          corpus: corpus.name,
          policy: p.name,
          costOverBest: round(raw.seconds / bestSeconds, 3),
          batches: shapes.length,
          paddingWaste: round(1 - real / padded, 3),
          best: best.detail?.packing,
        });
        console.log(
          `  ${(raw.seconds / bestSeconds).toFixed(2)}x  ${p.name}: ${shapes.length} batches, mean ${(corpus.texts.length / shapes.length).toFixed(1)} texts, padding ${((1 - real / padded) * 100).toFixed(1)}%`,
        );
      }
    }
  } finally {
    await limit.stop();
  }
  const file = path.join('bench', 'results', `what-if${values.quick ? '-quick' : ''}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ loadavg: os.loadavg(), results: out }, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
