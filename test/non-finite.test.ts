/**
 * A model that returns NaN for a text (fp16 overflow, a broken export, a GPU
 * server's bad answer): that text is answered `model_error` and
 * dead-lettered, its batch neighbours get their vectors, and nothing with a
 * NaN reaches a reply stream or the sink. Before, the sink refused the row
 * and retried the whole answer group forever, and the worker stopped
 * answering anything.
 *
 * Three producers of NaN: the fixture core (`@@nan`, in a real worker
 * thread); a real model in ONNX Runtime (the generated tiny model with one
 * token's embedding row set to NaN in its fp32 graph: any text holding that
 * word comes out NaN, as an fp16 overflow does, through the real tokenizer,
 * padding, batching and pooling); and a remote model whose stand-in provider
 * answers NaN in base64, as a text-embeddings-inference server overflowing
 * in fp16 would.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { resolveShape } from '../src/models/generate/presets.js';
import { buildVocab } from '../src/models/generate/vocab.js';
import { generateWeights } from '../src/models/generate/weights.js';
import type { EmbedResult } from '../src/types.js';
import type { WorkerHandle } from '../src/worker/worker-process.js';
import { type FakeProvider, startFakeProvider } from './helpers/fake-provider.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, groupInfo, randomPrefix, redisClient } from './helpers/redis.js';
import { resultsById } from './helpers/results.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefixes: string[] = [];
const dirs: string[] = [];
const providers: FakeProvider[] = [];

afterAll(async () => {
  await stopAllWorkers();
  await Promise.all(providers.map((p) => p.close()));
  for (const p of prefixes) await deletePrefix(redis, p);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  redis.disconnect();
});

async function answers(
  client: StreambedClient,
  prefix: string,
  model: string,
  texts: string[],
  tag: string,
): Promise<EmbedResult[]> {
  const reply = `${prefix}:reply:s/${tag}`;
  const pages = texts.map((text, i) => ({ id: `${tag}-${i}`, source: 's', text }));
  await client.submit(pages, { model, replyTo: reply });
  const byId = await resultsById(redis, reply, texts.length);
  return pages.map((p) => byId.get(p.id) as EmbedResult);
}

async function setUp(
  tag: string,
  models: string,
): Promise<{
  prefix: string;
  worker: WorkerHandle;
  client: StreambedClient;
}> {
  const prefix = randomPrefix(tag);
  prefixes.push(prefix);
  const dir = await mkdtemp(join(tmpdir(), 'sb-nan-'));
  dirs.push(dir);
  const worker = await startTestWorker(prefix, {
    MODELS: models,
    THREADS: 2,
    BATCH_SIZE: 16,
    SINK: `pglite:${join(dir, 'db')}`,
  });
  return { prefix, worker, client: new StreambedClient({ redis, prefix }) };
}

async function expectPoisonHandled(
  prefix: string,
  worker: WorkerHandle,
  client: StreambedClient,
  model: string,
  marker: string,
): Promise<void> {
  const k = keys(prefix);
  const texts = Array.from({ length: 12 }, (_, i) =>
    i === 5 ? `overflows ${marker} here` : `neighbour ${i}`,
  );
  const first = await answers(client, prefix, model, texts, 'a');
  first.forEach((r, i) => {
    if (i === 5) {
      expect(r.status).toBe('error');
      expect(r.status === 'error' && r.res.code).toBe('model_error');
      expect(r.status === 'error' && r.res.message).toMatch(/NaN or Infinity/);
      return;
    }
    expect(r.status).toBe('ok');
    const v = r.status === 'ok' ? Array.from(r.res.vectors[0] ?? []) : [];
    expect(v.length).toBeGreaterThan(0);
    expect(v.every(Number.isFinite)).toBe(true);
  });
  const dlq = await redis.xrange(k.dlq(model), '-', '+');
  expect(dlq).toHaveLength(1);
  expect(dlq[0]?.[1].join(' ')).toContain('a-5');
  // The worker still answers, and stored every finite vector and nothing else.
  const second = await answers(client, prefix, model, ['after the poison'], 'b');
  expect(second[0]?.status).toBe('ok');
  const stored = await worker.sinkClient!.search(
    model,
    (first[0]?.status === 'ok' && first[0].res.vectors[0]) as Float32Array,
    50,
  );
  expect(stored.map((h) => h.id).sort()).toEqual(
    [...texts.map((_, i) => `a-${i}`).filter((id) => id !== 'a-5'), 'b-0'].sort(),
  );
  expect((await groupInfo(redis, k.request(model), k.group))?.pending).toBe(0);
}

describe('a vector with NaN', () => {
  it('from the model in a worker thread: that text fails alone, the sink and the worker go on', async () => {
    const { prefix, worker, client } = await setUp('nanfx', 'fx=fixture:8');
    try {
      await expectPoisonHandled(prefix, worker, client, 'fx', '@@nan');
    } finally {
      await client.close();
    }
  }, 60_000);

  it('from ONNX Runtime running a real model: the same', async () => {
    const { dir, word } = await modelWithNanWord();
    const { prefix, worker, client } = await setUp('nanort', `ort=${dir};dtype=fp32`);
    try {
      await expectPoisonHandled(prefix, worker, client, 'ort', word);
    } finally {
      await client.close();
    }
  }, 90_000);

  it('from a remote provider answering base64: the same', async () => {
    const fake = await startFakeProvider({ dim: 12, nan: (t) => t.includes('overflows') });
    providers.push(fake);
    const { prefix, worker, client } = await setUp(
      'nanremote',
      `emb=openai:fake-embed;baseUrl=${fake.baseUrl}`,
    );
    try {
      await expectPoisonHandled(prefix, worker, client, 'emb', 'NaN');
    } finally {
      await client.close();
    }
  }, 60_000);
});

/**
 * A copy of the generated tiny model whose fp32 graph has NaN in one
 * token's row of the word-embedding table, and that token's word. The row is
 * found by its bytes: the generator's weights are seeded, so they are
 * computed again here, and the row must occur exactly once in the file.
 */
async function modelWithNanWord(): Promise<{ dir: string; word: string }> {
  const model = await tinyModel();
  const dir = await mkdtemp(join(tmpdir(), 'sb-nan-model-'));
  dirs.push(dir);
  await cp(model.dir, dir, { recursive: true });
  const shape = resolveShape({ preset: 'tiny', seed: model.seed, hidden: model.dim, out: dir });
  const { tokens } = buildVocab(shape.vocab, shape.vocabSize);
  // Not a word (or, as WordPiece matches longest prefixes first, a prefix of one) of the other texts.
  const others = ['overflows', 'here', 'neighbour', 'after', 'the', 'poison'];
  const id = tokens.findIndex((t) => /^[a-z]{5,}$/.test(t) && !others.some((w) => w.startsWith(t)));
  expect(id).toBeGreaterThan(0);
  const table = generateWeights(shape, model.seed).wordEmbeddings;
  const h = shape.hidden;
  const row = Buffer.from(table.buffer, table.byteOffset + id * h * 4, h * 4);
  const file = join(dir, 'onnx', 'model.onnx');
  const bytes = await readFile(file);
  const at = bytes.indexOf(row);
  expect(at).toBeGreaterThan(0);
  expect(bytes.indexOf(row, at + 1)).toBe(-1);
  Buffer.from(new Float32Array(h).fill(NaN).buffer).copy(bytes, at);
  await writeFile(file, bytes);
  return { dir, word: tokens[id] as string };
}
