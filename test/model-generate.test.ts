/**
 * The model generator (src/models/generate): determinism, option validation,
 * and that Transformers.js loads and runs what it writes, offline, in both
 * fp32 and q8.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import {
  AutoTokenizer,
  env,
  type FeatureExtractionPipeline,
  pipeline,
} from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import { generateModel, type GenerateOptions } from '../src/models/generate/index.js';
import { tinyModel } from './helpers/models.js';

env.allowRemoteModels = false;
env.allowLocalModels = true;

const scratch: string[] = [];
async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streambed-gen-test-'));
  scratch.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  a.forEach((x, i) => {
    const y = b[i] ?? NaN;
    dot += x * y;
    na += x * x;
    nb += y * y;
  });
  return dot / Math.sqrt(na * nb);
}

const TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'Redis streams feed a fleet of embedding workers!',
  'zebra xylophone 12345 #hashtag @user http://example.com/path?q=1',
];
const LONG_TEXT = Array.from({ length: 2000 }, (_, i) => `word${i % 97}`).join(' ');

describe('generateModel', () => {
  it('writes byte-identical files for the same options', async () => {
    const [a, b] = [await scratchDir(), await scratchDir()];
    await generateModel({ preset: 'tiny', seed: 7, out: a });
    await generateModel({ preset: 'tiny', seed: 7, out: b });
    const files = await listFiles(a);
    expect(files).toEqual(await listFiles(b));
    expect(files).toEqual(
      expect.arrayContaining([
        'config.json',
        'tokenizer.json',
        'tokenizer_config.json',
        'onnx/model.onnx',
        'onnx/model_quantized.onnx',
        'streambed.json',
      ]),
    );
    for (const f of files) {
      expect(Buffer.compare(await readFile(join(a, f)), await readFile(join(b, f))), f).toBe(0);
    }
  });

  it('draws different weights for a different seed', async () => {
    const [a, b] = [await scratchDir(), await scratchDir()];
    await generateModel({ preset: 'tiny', seed: 1, out: a });
    await generateModel({ preset: 'tiny', seed: 2, out: b });
    for (const f of ['onnx/model.onnx', 'onnx/model_quantized.onnx']) {
      const [x, y] = [await readFile(join(a, f)), await readFile(join(b, f))];
      expect(x.length).toBe(y.length);
      expect(x.equals(y), f).toBe(false);
    }
    // The vocabulary does not depend on the seed.
    expect(await readFile(join(a, 'tokenizer.json'))).toEqual(
      await readFile(join(b, 'tokenizer.json')),
    );
  });

  it('returns an absolute dir and writes a not-semantic marker', async () => {
    const out = await scratchDir();
    const model = await generateModel({ preset: 'tiny', seed: 3, hidden: 32, out });
    expect(model).toEqual({ dir: out, dim: 32, preset: 'tiny', seed: 3 });
    const marker = JSON.parse(await readFile(join(out, 'streambed.json'), 'utf8'));
    expect(marker).toMatchObject({ generated: true, semantic: false, preset: 'tiny', seed: 3 });
  });

  it.each<[string, Partial<GenerateOptions>]>([
    ['unknown preset', { preset: 'huge' as GenerateOptions['preset'] }],
    ['non-integer seed', { seed: 1.5 }],
    ['negative seed', { seed: -1 }],
    ['hidden not a multiple of the heads', { hidden: 30 }],
    ['zero layers', { layers: 0 }],
  ])('rejects %s', async (_label, bad) => {
    const opts = { preset: 'tiny', seed: 1, out: join(tmpdir(), 'never-written'), ...bad };
    const err = await generateModel(opts as GenerateOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreambedError);
    expect((err as StreambedError).code).toBe('config');
  });

  it('gives the minilm preset the shape of all-MiniLM-L6-v2', async () => {
    const out = await scratchDir();
    const model = await generateModel({ preset: 'minilm', seed: 1, out });
    expect(model.dim).toBe(384);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'bert',
      hidden_size: 384,
      num_hidden_layers: 6,
      num_attention_heads: 12,
      intermediate_size: 1536,
      vocab_size: 30522,
      max_position_embeddings: 512,
    });
    const tokenizer = await AutoTokenizer.from_pretrained(out);
    expect(tokenizer.get_vocab().size).toBe(30522);
    // int8 weights: the quantized file is about a quarter of the fp32 one.
    const fp32 = (await stat(join(out, 'onnx/model.onnx'))).size;
    const q8 = (await stat(join(out, 'onnx/model_quantized.onnx'))).size;
    expect(q8 / fp32).toBeLessThan(0.3);
  });
});

describe('a generated tiny model in Transformers.js', () => {
  const embedders = new Map<string, FeatureExtractionPipeline>();
  const embed = async (dtype: string, texts: string[]): Promise<number[][]> => {
    const fe = embedders.get(dtype);
    if (!fe) throw new Error(`no ${dtype} pipeline`);
    const out = await fe(texts, { pooling: 'mean', normalize: true });
    return out.tolist() as number[][];
  };

  beforeAll(async () => {
    const { dir } = await tinyModel();
    for (const dtype of ['fp32', 'q8'] as const) {
      embedders.set(dtype, await pipeline('feature-extraction', dir, { dtype }));
    }
  });
  afterAll(async () => {
    for (const fe of embedders.values()) await fe.dispose();
  });

  it('tokenizes any printable ASCII without [UNK], between [CLS] and [SEP]', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained((await tinyModel()).dir);
    let ascii = '';
    for (let c = 0x20; c < 0x7f; c++) ascii += String.fromCharCode(c);
    const text = `${ascii} Supercalifragilistic QUICK wörds ${ascii.split('').reverse().join('')}`;
    const tokens = tokenizer.tokenize(text, { add_special_tokens: true });
    expect(tokens[0]).toBe('[CLS]');
    expect(tokens[tokens.length - 1]).toBe('[SEP]');
    expect(tokens).not.toContain('[UNK]');
    expect(tokens).toContain('##s');
  });

  it.each(['fp32', 'q8'])(
    '%s: embeds to hidden-size vectors that tell texts apart',
    async (dtype) => {
      const vectors = await embed(dtype, TEXTS);
      expect(vectors.map((v) => v.length)).toEqual([64, 64, 64]);
      for (let i = 0; i < vectors.length; i++) {
        for (let j = i + 1; j < vectors.length; j++) {
          expect(cosine(vectors[i] ?? [], vectors[j] ?? [])).toBeLessThan(0.99);
        }
      }
    },
  );

  it.each(['fp32', 'q8'])('%s: embeds the same text the same way every time', async (dtype) => {
    const [first] = await embed(dtype, [TEXTS[0] ?? '']);
    const [again] = await embed(dtype, [TEXTS[0] ?? '']);
    // ORT is not bit-exact from run to run.
    (again ?? []).forEach((x, i) => expect(x).toBeCloseTo(first?.[i] ?? NaN, 5));
  });

  it.each([
    ['fp32', 0.99999],
    // Dynamic quantization scales by the whole batch, padding included.
    ['q8', 0.99],
  ] as const)('%s: masks padding, so batch neighbours barely move a vector', async (dtype, min) => {
    const [alone] = await embed(dtype, [TEXTS[0] ?? '']);
    const [batched] = await embed(dtype, [TEXTS[0] ?? '', LONG_TEXT.slice(0, 600)]);
    expect(cosine(alone ?? [], batched ?? [])).toBeGreaterThan(min);
  });

  it('truncates a 2000-word text to 512 tokens', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained((await tinyModel()).dir);
    const { input_ids: ids } = tokenizer(LONG_TEXT, { truncation: true });
    expect(ids.dims).toEqual([1, 512]);
  });

  it.each(['fp32', 'q8'])('%s: embeds a 2000-word text without crashing', async (dtype) => {
    const [vector] = await embed(dtype, [LONG_TEXT]);
    expect(vector).toHaveLength(64);
    expect(vector?.every(Number.isFinite)).toBe(true);
  });

  it('q8 stays close to fp32', async () => {
    const fp32 = await embed('fp32', TEXTS);
    const q8 = await embed('q8', TEXTS);
    fp32.forEach((v, i) => expect(cosine(v, q8[i] ?? [])).toBeGreaterThan(0.9));
  });

  it('follows the hidden size option', async () => {
    const { dir, dim } = await tinyModel({ hidden: 32, seed: 2 });
    expect(dim).toBe(32);
    const fe = await pipeline('feature-extraction', dir, { dtype: 'q8' });
    const out = await fe('hello', { pooling: 'mean', normalize: true });
    expect(out.dims).toEqual([1, 32]);
    await fe.dispose();
  });
});
