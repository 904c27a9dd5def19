/**
 * Pages longer than the model, through a real worker on real Redis (issue 16):
 * chunks cut by the model's own tokenizer, each chunk's vector equal to its
 * passage embedded directly by the core (fp32), offsets that hold on any
 * script, one answer per page, `too_large` past MAX_CHUNKS.
 */
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { estimatedTokenizer } from '../src/chunking/tokenizers.js';
import { StreambedClient } from '../src/client/client.js';
import { decodeResult } from '../src/codec/result.js';
import { keys } from '../src/keys.js';
import type { EmbedResult, OkPayload, Page } from '../src/types.js';
import { pageVector } from '../src/worker/page-split.js';
import { type Embedder, loadEmbedder } from '../workers/embed-core.js';
import { loadTokenizer } from '../workers/tokenize.js';
import {
  type FakeProvider,
  fakeVector,
  startFakeProvider,
  textHash,
} from './helpers/fake-provider.js';
import { spawnGateway } from './helpers/gateway.js';
import { tinyModel } from './helpers/models.js';
import { coverageProblem, englishPage, graphemeBoundaries, unicodePage } from './helpers/pages.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const prefix = randomPrefix('chunks');
const k = keys(prefix);
let client: StreambedClient;
let core: Embedder;
let tokenizer: PreTrainedTokenizer;
let reply = 0;
let provider: FakeProvider;

beforeAll(async () => {
  const model = await tinyModel();
  core = await loadEmbedder({
    ref: model.dir,
    local: true,
    dtype: 'fp32',
    intraOpThreads: 1,
    allowRemote: false,
  });
  ({ tokenizer } = await loadTokenizer({ ref: model.dir, local: true, allowRemote: false }));
  provider = await startFakeProvider({});
  await startTestWorker(prefix, {
    // `paged` chunks every `text` page by default, with a window of its own; so does
    // `remote`, an OpenAI-compatible provider whose tokenizer the fleet does not have.
    MODELS:
      `small=${model.dir};dtype=fp32,paged=${model.dir};dtype=fp32;chunk=true;chunkWindow=64;chunkOverlap=8,` +
      `remote=openai:fake-embed;baseUrl=${provider.baseUrl};chunk=true;chunkWindow=100;chunkOverlap=10`,
    THREADS: 2,
    CLAIM_IDLE_MS: 60_000,
  });
  client = new StreambedClient({ redis, prefix });
});

afterAll(async () => {
  await client.close();
  await stopAllWorkers();
  await provider.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const tokensOf = (text: string) => tokenizer.encode(text).length;

/** Submit pages and wait for exactly one answer each. */
async function answers(pages: Page[], model = 'small'): Promise<Map<string, EmbedResult>> {
  const stream = k.sourceReply('docs', `t${reply++}`);
  await client.submit(pages, { model, replyTo: stream });
  await until(
    'answered',
    async () => (await redis.xlen(stream)) >= pages.length || undefined,
    60_000,
  );
  const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
  expect(entries).toHaveLength(pages.length);
  return new Map(
    entries.map(([id, f]) => [decodeResult(id.toString(), f).id, decodeResult(id.toString(), f)]),
  );
}

function okOf(r: EmbedResult | undefined): OkPayload {
  if (r?.status !== 'ok') throw new Error(`not ok: ${JSON.stringify(r?.res)}`);
  return r.res;
}

/** Each chunk's vector equals its `[start, end)` passage embedded directly (fp32, 1e-5). */
async function expectPassagesMatch(page: string, res: OkPayload): Promise<void> {
  const spans = res.spans ?? [];
  expect(spans).toHaveLength(res.vectors.length);
  const direct = await core.embed(spans.map(([s, e]) => page.slice(s, e)));
  spans.forEach((_, i) => {
    const want = direct.data.subarray(i * direct.dim, (i + 1) * direct.dim);
    const got = res.vectors[i] as Float32Array;
    expect(Math.max(...got.map((v, j) => Math.abs(v - (want[j] as number))))).toBeLessThanOrEqual(
      1e-5,
    );
  });
}

describe('chunking in the worker', () => {
  it('answers a 5,000-token page once, chunk by chunk, each vector its passage embedded directly', async () => {
    const page = englishPage(5_000, tokensOf);
    const got = await answers([
      { id: 'long', source: 'docs', text: page, chunk: { window: 128, overlap: 16 } },
    ]);
    const res = okOf(got.get('long'));
    expect(coverageProblem(page, res.spans ?? [])).toBeUndefined();
    expect(res.vectors.length).toBeGreaterThan(5_000 / 128);
    expect(res.truncated.every((t) => t === false)).toBe(true);
    for (const [s, e] of res.spans ?? [])
      expect(tokensOf(page.slice(s, e))).toBeLessThanOrEqual(128);
    await expectPassagesMatch(page, res);
    expect(await redis.xpending(k.request('small'), k.group)).toEqual([0, null, null, null]);
  });

  it('gives a one-sentence page one chunk, the same vector as without chunking', async () => {
    const text = 'Streams of pages flow through the fleet.';
    const got = await answers([
      { id: 'chunked', source: 'docs', text, chunk: true },
      { id: 'plain', source: 'docs', text },
    ]);
    const chunked = okOf(got.get('chunked'));
    const plain = okOf(got.get('plain'));
    expect(chunked.spans).toEqual([[0, text.length]]);
    expect(plain.spans).toBeUndefined();
    expect(Array.from(chunked.vectors[0] as Float32Array)).toEqual(
      Array.from(plain.vectors[0] as Float32Array),
    );
  });

  it('keeps offsets right on emoji, CJK and combining marks', async () => {
    const page = unicodePage(1_500, tokensOf);
    const got = await answers([
      { id: 'u', source: 'docs', text: page, chunk: { window: 64, overlap: 8 } },
    ]);
    const res = okOf(got.get('u'));
    expect(coverageProblem(page, res.spans ?? [])).toBeUndefined();
    const boundaries = graphemeBoundaries(page);
    for (const [s, e] of res.spans ?? []) expect(boundaries.has(s) && boundaries.has(e)).toBe(true);
    await expectPassagesMatch(page, res);
  });

  it('adds the page vector when asked: the normalised mean of the chunk vectors', async () => {
    const page = englishPage(600, tokensOf);
    const got = await answers([
      {
        id: 'pv',
        source: 'docs',
        text: page,
        chunk: { window: 128, overlap: 16 },
        pageVector: true,
      },
    ]);
    const res = okOf(got.get('pv'));
    expect(res.vectors.length).toBeGreaterThan(1);
    const want = pageVector(res.vectors);
    expect(Array.from(res.pageVector ?? [])).toEqual(Array.from(want));
    expect(Math.hypot(...(res.pageVector ?? []))).toBeCloseTo(1, 5);
  });

  it('answers a page that needs more than MAX_CHUNKS chunks too_large, computing nothing', async () => {
    const page = englishPage(3_000, tokensOf);
    const got = await answers([
      { id: 'huge', source: 'docs', text: page, chunk: { window: 8, overlap: 0 } },
    ]);
    const r = got.get('huge');
    expect(r?.status).toBe('error');
    expect(r?.res).toMatchObject({ code: 'too_large' });
    expect((r?.res as { message: string }).message).toMatch(
      /more than 256 chunks of 8 tokens \(MAX_CHUNKS\)/,
    );
  });

  it("chunks by the model's default, and an envelope can opt out", async () => {
    const page = englishPage(400, tokensOf);
    const got = await answers(
      [
        { id: 'default', source: 'docs', text: page },
        { id: 'off', source: 'docs', text: page, chunk: false },
      ],
      'paged',
    );
    const byDefault = okOf(got.get('default'));
    expect(byDefault.vectors.length).toBeGreaterThan(400 / 64);
    for (const [s, e] of byDefault.spans ?? [])
      expect(tokensOf(page.slice(s, e))).toBeLessThanOrEqual(64);
    const off = okOf(got.get('off'));
    expect(off.spans).toBeUndefined();
    expect(off.vectors).toHaveLength(1);
  });

  it('takes chunking from a flat-field producer (redis-cli, any language)', async () => {
    const page = englishPage(500, tokensOf);
    const stream = k.sourceReply('cli', 'flat');
    await redis.xadd(
      k.request('small'),
      '*',
      'id',
      'flat',
      'source',
      'cli',
      'text',
      page,
      'reply_to',
      stream,
      'chunk',
      '{"window":100,"overlap":10}',
      'page_vector',
      'true',
    );
    await redis.xadd(
      k.request('small'),
      '*',
      'id',
      'bad',
      'source',
      'cli',
      'texts',
      '["a","b"]',
      'chunk',
      'true',
      'reply_to',
      stream,
    );
    await until('answered', async () => (await redis.xlen(stream)) >= 2 || undefined, 30_000);
    const entries = (await redis.xrangeBuffer(stream, '-', '+')) as Array<[Buffer, Buffer[]]>;
    const byId = new Map(
      entries.map(([id, f]) => [decodeResult(id.toString(), f).id, decodeResult(id.toString(), f)]),
    );
    const res = okOf(byId.get('flat'));
    expect(res.vectors.length).toBeGreaterThan(500 / 100);
    expect(res.pageVector).toBeInstanceOf(Float32Array);
    await expectPassagesMatch(page, res);
    expect(byId.get('bad')?.res).toMatchObject({
      code: 'invalid',
      message: expect.stringMatching(/chunk splits one page/),
    });
  });

  it('chunks for a remote model on the documented estimate, each provider input a span of the page', async () => {
    const page = unicodePage(800, tokensOf);
    const got = await answers([{ id: 'r', source: 'docs', text: page }], 'remote');
    const res = okOf(got.get('r'));
    expect(coverageProblem(page, res.spans ?? [])).toBeUndefined();
    const passages = (res.spans ?? []).map(([s, e]) => page.slice(s, e));
    expect(passages.length).toBeGreaterThan(1);
    const sent = new Set(provider.requests.flatMap((r) => r.inputs));
    passages.forEach((p, i) => {
      expect(sent.has(textHash(p))).toBe(true);
      expect(estimatedTokenizer.count(p) + estimatedTokenizer.specials).toBeLessThanOrEqual(100);
      expect(Array.from(res.vectors[i] as Float32Array)).toEqual(
        Array.from(fakeVector(p, res.dim)),
      );
    });
  });

  it('gives one vector per input where the model chunks by default: SDK embed and the OpenAI gateway', async () => {
    const page = englishPage(400, tokensOf);
    const direct = await core.embed([page]);
    const want = Array.from(direct.data.subarray(0, direct.dim));
    const close = (got: ArrayLike<number>) =>
      Math.max(...Array.from(got, (v, j) => Math.abs(v - (want[j] as number))));

    const [viaSdk] = await client.embed([page], { model: 'paged', source: 'docs' });
    expect(close(viaSdk as Float32Array)).toBeLessThanOrEqual(1e-5);

    const gateway = await spawnGateway(prefix, {});
    try {
      const res = await gateway.client().embeddings.create({
        model: 'paged',
        input: [page, 'a short one'],
        encoding_format: 'float',
      });
      expect(res.data).toHaveLength(2);
      expect(close(res.data[0]?.embedding ?? [])).toBeLessThanOrEqual(1e-5);
    } finally {
      await gateway.stop();
    }
  });
});
