/**
 * Case a (compute limit): raw onnxruntime-node `InferenceSession.run` in
 * `threads` worker threads of `intraOp` ORT threads each, on pre-tokenised,
 * length-sorted, packed batches. No Redis, no tokeniser, no pooling: the
 * model's own compute on these cores, the ceiling for every other case.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { packBatches, SOLO_TOKENS } from '../../src/worker/batcher.js';
import { serveRole } from '../child.js';

export interface LimitInit {
  onnxFile: string;
  threads: number;
  intraOp: number;
  /** Pre-tokenised warm-up texts. */
  warmup: number[][];
}

export interface Packing {
  batchSize: number;
  maxBatchTokens: number;
}

export interface LimitRun {
  ids: number[][];
  packing: Packing;
  /** Run exactly these batch shapes ([texts, padded length]) instead of packing `ids`. */
  shapes?: Array<[number, number]>;
}

export interface LimitResult {
  texts: number;
  batches: number;
  tokens: number;
  paddedTokens: number;
  seconds: number;
  /** Fraction of wall time each thread spent inside session.run. */
  threadBusy: number[];
}

const threads: Worker[] = [];

function once<T>(w: Worker, op: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { op: string } & T) => {
      if (m.op !== op) return;
      w.off('message', onMessage);
      w.off('error', reject);
      resolve(m);
    };
    w.on('message', onMessage);
    w.once('error', reject);
  });
}

/** Longest (costliest) batches first, so the last batches to finish are short ones. */
function plan(ids: number[][], packing: Packing): number[][][] {
  const items = ids.map((t) => ({ t, tokens: t.length }));
  // The worker's own packer and rules, so the limit's packings are never worse than its.
  const batches = packBatches(items, { ...packing, soloTokens: SOLO_TOKENS }).map((b) =>
    b.map((i) => i.t),
  );
  const cost = (b: number[][]) => b.length * Math.max(...b.map((t) => t.length)) ** 1.15;
  return batches.sort((x, y) => cost(y) - cost(x));
}

/** A batch of the given shape; ids do not change ORT's compute, only the shape does. */
function synthetic([n, len]: [number, number]): number[][] {
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: len }, (_, j) => 1000 + ((i * 31 + j * 7) % 20000)),
  );
}

serveRole(
  {
    async init(arg) {
      const init = arg as LimitInit;
      const file = fileURLToPath(new URL('./ort-thread.js', import.meta.url));
      for (let i = 0; i < init.threads; i++) {
        const w = new Worker(file, {
          workerData: { onnxFile: init.onnxFile, intraOp: init.intraOp },
        });
        await once(w, 'ready');
        threads.push(w);
      }
      // Warm every thread once, at batch 1 and packed, on every corpus's shapes.
      const warm = [
        ...plan(init.warmup, { batchSize: 32, maxBatchTokens: 2048 }),
        ...init.warmup.map((t) => [t]),
      ];
      await Promise.all(
        threads.map((w) => {
          const done = once(w, 'warmed');
          w.postMessage({ op: 'warm', batches: warm });
          return done;
        }),
      );
      return { threads: init.threads, intraOp: init.intraOp };
    },
    async run(arg): Promise<LimitResult> {
      const { packing, shapes } = arg as LimitRun;
      const batches = shapes ? shapes.map(synthetic) : plan((arg as LimitRun).ids, packing);
      const ids = batches.flat();
      await Promise.all(
        threads.map((w) => {
          const done = once(w, 'prepared');
          w.postMessage({ op: 'prepare', batches });
          return done;
        }),
      );
      const counter = new SharedArrayBuffer(4);
      const started = performance.now();
      const done = await Promise.all(
        threads.map((w) => {
          const d = once<{ busyMs: number; runs: number }>(w, 'done');
          w.postMessage({ op: 'go', counter });
          return d;
        }),
      );
      const ms = performance.now() - started;
      const tokens = ids.reduce((a, t) => a + t.length, 0);
      const paddedTokens = batches.reduce(
        (a, b) => a + b.length * Math.max(...b.map((t) => t.length)),
        0,
      );
      return {
        texts: ids.length,
        batches: batches.length,
        tokens,
        paddedTokens,
        seconds: ms / 1000,
        threadBusy: done.map((d) => Math.round((d.busyMs / ms) * 1000) / 1000),
      };
    },
  },
  async () => {
    await Promise.all(threads.map((w) => w.terminate()));
  },
);
