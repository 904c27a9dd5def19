/**
 * `node dist/bench/core-vs-ort.js [--texts 21] [--words 10] [--iters 150]`:
 * the worker's embed core (Transformers.js forward, pooling, normalising:
 * what a compute thread runs per batch) against a raw onnxruntime-node
 * `session.run` on the same token ids, one thread, one ORT thread, nothing
 * else running. Case d's compute threads spend more CPU per text than case
 * a; this says how much of that is the core's own code, as opposed to the
 * machine being shared with the main thread, Redis and the load generator.
 * The two paths alternate in six rounds, so drift falls on both.
 */
import { parseArgs } from 'node:util';

import * as ort from 'onnxruntime-node';

import { loadEmbedder } from '../workers/embed-core.js';
import { encodeText, joinRows, loadTokenizer } from '../workers/tokenize.js';
import { ensureModel } from './model.js';

const ROUNDS = 6;
const WORDS =
  'the quick brown fox jumps over a lazy dog while streams carry pages of text into embeddings';

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      texts: { type: 'string', default: '21' },
      words: { type: 'string', default: '10' },
      iters: { type: 'string', default: '150' },
    },
  });
  const [texts, words, iters] = [Number(v.texts), Number(v.words), Number(v.iters)];
  const model = await ensureModel('.streambed/bench/models', 'q8');
  const { tokenizer } = await loadTokenizer({ ref: model.dir, local: true, allowRemote: false });
  const vocab = WORDS.split(' ');
  const batch = joinRows(
    Array.from({ length: texts }, (_, i) =>
      encodeText(
        tokenizer,
        Array.from({ length: words }, (_, j) => vocab[(i * 7 + j * 3) % vocab.length]).join(' '),
        256,
      ),
    ),
  );
  const core = await loadEmbedder({
    ref: model.dir,
    local: true,
    dtype: 'q8',
    intraOpThreads: 1,
    allowRemote: false,
  });
  const session = await ort.InferenceSession.create(model.onnxFile, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const feeds = rawFeeds(batch.ids, batch.offsets);
  const paths = {
    raw: () => session.run(feeds()),
    core: () => core.embed([], batch),
  };
  for (const run of Object.values(paths)) for (let i = 0; i < 20; i++) await run();
  const cpuMs = { raw: 0, core: 0 };
  const per = Math.max(1, Math.round(iters / ROUNDS));
  for (let round = 0; round < ROUNDS; round++)
    for (const name of ['raw', 'core'] as const) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < per; i++) await paths[name]();
      const c = process.cpuUsage(c0);
      cpuMs[name] += (c.user + c.system) / 1000;
    }
  const n = per * ROUNDS;
  const rows = batch.offsets.length - 1;
  console.log(
    `batch of ${rows} text(s), ${batch.ids.length} tokens: raw ORT ${(cpuMs.raw / n).toFixed(2)} ms, embed core ${(cpuMs.core / n).toFixed(2)} ms CPU per batch; core/raw ${(cpuMs.core / cpuMs.raw).toFixed(3)}`,
  );
}

/** The int64 feeds of a padded batch, as case a builds them. */
function rawFeeds(ids: Int32Array, offsets: Uint32Array): () => Record<string, ort.Tensor> {
  const n = offsets.length - 1;
  let len = 0;
  for (let i = 0; i < n; i++)
    len = Math.max(len, (offsets[i + 1] as number) - (offsets[i] as number));
  const inputIds = new BigInt64Array(n * len);
  const mask = new BigInt64Array(n * len);
  for (let i = 0; i < n; i++)
    for (let j = offsets[i] as number, k = 0; j < (offsets[i + 1] as number); j++, k++) {
      inputIds[i * len + k] = BigInt(ids[j] as number);
      mask[i * len + k] = 1n;
    }
  const types = new BigInt64Array(n * len);
  return () => ({
    input_ids: new ort.Tensor('int64', inputIds, [n, len]),
    attention_mask: new ort.Tensor('int64', mask, [n, len]),
    token_type_ids: new ort.Tensor('int64', types, [n, len]),
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
