/**
 * `streambed serve` through the official `openai` client, against a real
 * worker process and Redis: the vectors are the stream path's for the same
 * model (fp32, so batch neighbours do not move them), in float and base64,
 * and every refusal is the error class an OpenAI client expects.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import OpenAI, { type APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys as buildKeys } from '../src/keys.js';
import { loadTokenizer } from '../workers/tokenize.js';
import { type ChildGateway, spawnGateway } from './helpers/gateway.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, REDIS_URL, redisClient, until } from './helpers/redis.js';
import { type ChildWorker, spawnWorker } from './helpers/worker.js';

const prefix = randomPrefix('gw');
const k = buildKeys(prefix);
const KEY = 'sk-alpha-0123456789';
const LIMITED = 'sk-limited-0123456789';
let redis: Redis;
let worker: ChildWorker;
let gateway: ChildGateway;
let sdk: StreambedClient;
let api: OpenAI;
let modelDir: string;
let keysFile: string;

/** What the model's own tokenizer counts for the texts, [CLS] and [SEP] included. */
async function tokenCount(texts: string[]): Promise<number> {
  const { tokenizer } = await loadTokenizer({ ref: modelDir, local: true, allowRemote: false });
  return texts.reduce((n, t) => n + (tokenizer.encode(t) as number[]).length, 0);
}

/** The stream path's vectors for the same texts: what the gateway must return. */
async function expected(texts: string[]): Promise<number[][]> {
  const vectors = await sdk.embed(texts, { model: 'tiny', timeoutMs: 30_000 });
  return vectors.map((v) => Array.from(v));
}

beforeAll(async () => {
  redis = redisClient();
  const model = await tinyModel();
  modelDir = model.dir;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-gw-keys-'));
  keysFile = path.join(dir, 'keys');
  fs.writeFileSync(keysFile, `# key source rpm\n${KEY} alpha\n${LIMITED} limited 2\n`);
  worker = spawnWorker(prefix, { MODELS: `tiny=${model.dir};dtype=fp32` });
  gateway = await spawnGateway(prefix, {
    GATEWAY_KEYS_FILE: keysFile,
    GATEWAY_MAX_BACKLOG: 50,
    MAX_ENVELOPE_BYTES: 4096,
    GATEWAY_MAX_INPUTS: 16,
    GATEWAY_MAX_REQUEST_BYTES: 8192,
  });
  api = gateway.client(KEY);
  sdk = new StreambedClient({ redis: REDIS_URL, prefix });
  // No MODELS on the gateway: it offers what the fleet serves (a stream with the group).
  await until('the gateway lists tiny', async () =>
    (await api.models.list()).data.some((m) => m.id === 'tiny'),
  );
});

afterAll(async () => {
  expect(await gateway.stop()).toBe(0);
  worker.proc.kill('SIGTERM');
  await worker.exited;
  await sdk.close();
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe('POST /v1/embeddings', () => {
  it('returns the stream path vectors for one string, as floats', async () => {
    const res = await api.embeddings.create({
      model: 'tiny',
      input: 'hello gateway',
      encoding_format: 'float',
    });
    expect(res.object).toBe('list');
    expect(res.model).toBe('tiny');
    expect(res.data).toHaveLength(1);
    expect(res.data[0]).toMatchObject({ object: 'embedding', index: 0 });
    expect(res.data[0]!.embedding).toEqual((await expected(['hello gateway']))[0]);
    expect(res.usage.prompt_tokens).toBe(await tokenCount(['hello gateway']));
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);
  });

  it('returns a batch in input order through base64 (the client default)', async () => {
    const input = ['first page', 'second, longer page of text', 'third', 'fourth page here'];
    const res = await api.embeddings.create({ model: 'tiny', input });
    expect(res.data.map((d) => d.index)).toEqual([0, 1, 2, 3]);
    const want = await expected(input);
    res.data.forEach((d, i) => expect(d.embedding, input[i]).toEqual(want[i]));
    expect(res.data[0]!.embedding).toHaveLength(64);
    // The workers' own counts, not the gateway's estimate.
    expect(res.usage.prompt_tokens).toBe(await tokenCount(input));
  });

  it("takes LangChain's default request, tiktoken cl100k_base ids, as the texts they encode", async () => {
    const enc = new Tiktoken(cl100k);
    const input = ['hello gateway', 'second, longer page of text'];
    // OpenAIEmbeddings (check_embedding_ctx_length, its default) sends one id list per text.
    const res = await api.embeddings.create({
      model: 'tiny',
      input: input.map((t) => enc.encode(t)),
    });
    const want = await expected(input);
    res.data.forEach((d, i) => expect(d.embedding, input[i]).toEqual(want[i]));
    // Counted by the model's own tokenizer, not in cl100k ids.
    expect(res.usage.prompt_tokens).toBe(await tokenCount(input));
    const one = await api.embeddings.create({ model: 'tiny', input: enc.encode('hello gateway') });
    expect(one.data[0]!.embedding).toEqual(want[0]);
  });

  it('an input longer than the model: cut by default, whole with chunk, 400 with error', async () => {
    // ~1000 tokens: twice what the tiny model reads (512), within MAX_ENVELOPE_BYTES (4096).
    const long = Array.from({ length: 500 }, (_, i) => `w${i % 50}`).join(' ');
    const mode = (m: string) => ({
      headers: { 'X-Streambed-Long-Input': m },
    });
    const body = { model: 'tiny', input: long, encoding_format: 'float' } as const;
    const cut = await api.embeddings.create(body);
    expect(cut.data[0]!.embedding).toEqual((await expected([long]))[0]);
    expect(cut.usage.prompt_tokens).toBe(512);
    const whole = await api.embeddings.create(body, mode('chunk'));
    // Every token read (chunks overlap, so more than the text's own count) and one unit vector.
    expect(whole.usage.prompt_tokens).toBeGreaterThan(await tokenCount([long]));
    expect(Math.hypot(...whole.data[0]!.embedding)).toBeCloseTo(1, 5);
    expect(whole.data[0]!.embedding).not.toEqual(cut.data[0]!.embedding);
    // A short input in chunk mode is one chunk: the same vector as ever.
    const short = await api.embeddings.create({ ...body, input: 'hello gateway' }, mode('chunk'));
    expect(short.data[0]!.embedding).toEqual((await expected(['hello gateway']))[0]);
    const err = await api.embeddings.create(body, mode('error')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as APIError).code).toBe('input_too_long');
    const bad = await api.embeddings.create(body, mode('sometimes')).catch((e: unknown) => e);
    expect((bad as APIError).code).toBe('invalid_long_input');
  });

  it('sends base64 as little-endian float32 bytes', async () => {
    const r = await fetch(`${gateway.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', input: 'bytes', encoding_format: 'base64' }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { data: Array<{ embedding: string }> };
    const buf = Buffer.from(body.data[0]!.embedding, 'base64');
    const floats = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
    expect(floats).toEqual((await expected(['bytes']))[0]);
  });

  it('accepts dimensions equal to the model dimension and refuses any other', async () => {
    const ok = await api.embeddings.create({ model: 'tiny', input: 'dims', dimensions: 64 });
    expect(ok.data[0]!.embedding).toHaveLength(64);
    const err = await api.embeddings
      .create({ model: 'tiny', input: 'dims', dimensions: 32 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as APIError).param).toBe('dimensions');
  });

  it("takes 1000 inputs in one request, as LangChain's embed_documents sends them", async () => {
    // Default limits (GATEWAY_MAX_INPUTS 2048): a request is no longer bounded like one envelope.
    const wide = await spawnGateway(prefix, { GATEWAY_KEYS_FILE: keysFile });
    try {
      const input = Array.from({ length: 1000 }, (_, i) => `document ${i} of a large batch`);
      const res = await wide.client(KEY).embeddings.create({ model: 'tiny', input });
      expect(res.data.map((d) => d.index)).toEqual(input.map((_, i) => i));
      const some = [0, 499, 999];
      const want = await expected(some.map((i) => input[i]!));
      some.forEach((i, k) => expect(res.data[i]!.embedding, input[i]).toEqual(want[k]));
    } finally {
      await wide.stop();
    }
  }, 60_000);

  it("cuts a Matryoshka model's vectors to a size its MODELS entry lists, normalised again", async () => {
    // A gateway given the workers' table, as the chart does, where the model lists shorter sizes.
    const sized = await spawnGateway(prefix, {
      GATEWAY_KEYS_FILE: keysFile,
      MODELS: `tiny=${modelDir};dtype=fp32;matryoshka=16|32`,
    });
    try {
      const client = sized.client(KEY);
      const input = ['cut one', 'cut two, a little longer'];
      const full = await expected(input);
      const res = await client.embeddings.create({
        model: 'tiny',
        input,
        dimensions: 32,
        encoding_format: 'float',
      });
      res.data.forEach((d, i) => {
        const head = full[i]!.slice(0, 32);
        const norm = Math.hypot(...head);
        expect(d.embedding).toHaveLength(32);
        d.embedding.forEach((x, j) => expect(x).toBeCloseTo(head[j]! / norm, 5));
      });
      // Through base64 (the client's default) too, and still unit length.
      const b64 = await client.embeddings.create({ model: 'tiny', input: 'cut', dimensions: 16 });
      expect(b64.data[0]!.embedding).toHaveLength(16);
      expect(Math.hypot(...b64.data[0]!.embedding)).toBeCloseTo(1, 5);
      const full64 = await client.embeddings.create({
        model: 'tiny',
        input: 'cut',
        dimensions: 64,
      });
      expect(full64.data[0]!.embedding).toEqual((await expected(['cut']))[0]);
      const err = await client.embeddings
        .create({ model: 'tiny', input: 'cut', dimensions: 20 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as APIError).message).toMatch(/can return 16, 32, 64, not 20/);
    } finally {
      await sized.stop();
    }
  });

  it('serves the bulk lane on X-Streambed-Lane: bulk, under the key source', async () => {
    const res = await api.embeddings.create(
      { model: 'tiny', input: 'bulk page', encoding_format: 'float' },
      { headers: { 'X-Streambed-Lane': 'bulk' } },
    );
    expect(res.data[0]!.embedding).toEqual((await expected(['bulk page']))[0]);
    expect(await redis.exists(k.bulkSource('tiny', 'alpha'))).toBe(1);
    expect(Number(await redis.hget(k.progress('alpha'), 'done'))).toBeGreaterThanOrEqual(1);
  });
});

describe('errors in OpenAI shapes', () => {
  const fail = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e,
    );

  it('unknown model: NotFoundError model_not_found', async () => {
    const err = await fail(api.embeddings.create({ model: 'nope', input: 'x' }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as APIError).code).toBe('model_not_found');
  });

  it('wrong or missing key: AuthenticationError', async () => {
    for (const key of ['sk-wrong', KEY.slice(0, -1)]) {
      const err = await fail(gateway.client(key).embeddings.create({ model: 'tiny', input: 'x' }));
      expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    }
    const r = await fetch(`${gateway.url}/v1/models`);
    expect(r.status).toBe(401);
    const body = (await r.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    // Keys never reach the logs, and with a keys file there is no warning about having none.
    expect(gateway.output()).not.toContain('GATEWAY_KEYS_FILE is not set');
    expect(gateway.output()).not.toContain(KEY);
    expect(gateway.output()).not.toContain('sk-wrong');
  });

  it('oversize text: 413; too many inputs, token ids and empty input: BadRequestError', async () => {
    const big = await fail(api.embeddings.create({ model: 'tiny', input: 'word '.repeat(1000) }));
    expect(big).toBeInstanceOf(OpenAI.APIError);
    expect((big as APIError).status).toBe(413);
    expect((big as APIError).message).toMatch(
      /input\[0\] is 5000 bytes .* limit of 4096 per input/,
    );
    // Each input within its own limit, the request over its total.
    const all = await fail(
      api.embeddings.create({ model: 'tiny', input: Array(3).fill('y'.repeat(3000)) }),
    );
    expect((all as APIError).status).toBe(413);
    expect((all as APIError).message).toMatch(/9000 bytes .* limit of 8192 per request/);
    const body = await fail(api.embeddings.create({ model: 'tiny', input: 'x'.repeat(100_000) }));
    expect((body as APIError).status).toBe(413);
    expect((body as APIError).message).toMatch(/request body is over/);
    const many = await fail(api.embeddings.create({ model: 'tiny', input: Array(17).fill('a') }));
    expect(many).toBeInstanceOf(OpenAI.BadRequestError);
    expect((many as APIError).message).toMatch(/17 inputs exceed the limit of 16/);
    const manyIds = await fail(
      api.embeddings.create({ model: 'tiny', input: Array(17).fill([1]) }),
    );
    expect((manyIds as APIError).message).toMatch(/17 inputs exceed the limit of 16/);
    const tokens = await fail(api.embeddings.create({ model: 'tiny', input: [[1, -2, 3]] }));
    expect(tokens).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tokens as APIError).code).toBe('invalid_token_ids');
    const empty = await fail(api.embeddings.create({ model: 'tiny', input: ['ok', ' '] }));
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('an input the model fails on: 422, which the client does not retry (nothing computed twice)', async () => {
    // A second worker serving a fixture model on the same fleet: `@@throw` throws in the model.
    const fx = spawnWorker(prefix, { MODELS: 'fx=fixture:8' });
    try {
      await until('the gateway lists fx', async () =>
        (await api.models.list()).data.some((m) => m.id === 'fx'),
      );
      // The SDK's default retries (2): a 5xx here would be sent, computed and dead-lettered 3 times.
      const retrying = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: KEY, maxRetries: 2 });
      const err = await fail(
        retrying.embeddings.create({ model: 'fx', input: 'bad @@throw text' }),
      );
      expect(err).toBeInstanceOf(OpenAI.UnprocessableEntityError);
      expect((err as APIError).code).toBe('model_error');
      expect(await redis.xlen(k.dlq('fx'))).toBe(1);
      const ok = await retrying.embeddings.create({ model: 'fx', input: 'fine text' });
      expect(ok.data[0]!.embedding).toHaveLength(8);
    } finally {
      fx.proc.kill('SIGTERM');
      await fx.exited;
    }
  });

  it('a key over its requests per minute: RateLimitError with Retry-After', async () => {
    const limited = gateway.client(LIMITED);
    await limited.embeddings.create({ model: 'tiny', input: 'one' });
    await limited.embeddings.create({ model: 'tiny', input: 'two' });
    const err = await fail(limited.embeddings.create({ model: 'tiny', input: 'three' }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const retryAfter = Number((err as APIError).headers?.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it('a model whose backlog is over the limit: 429 before anything is queued', async () => {
    // A served model (group exists) with no live worker and 60 entries waiting.
    const stream = k.request('stuck');
    await redis.xgroup('CREATE', stream, k.group, '0', 'MKSTREAM');
    for (let i = 0; i < 60; i++)
      await redis.xadd(stream, '*', 'id', `p${i}`, 'source', 's', 'text', 't');
    // Not yet in the gateway's cached list: an unknown name is looked up again at once.
    const err = await fail(api.embeddings.create({ model: 'stuck', input: 'x' }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as APIError).code).toBe('backlog_full');
    expect((err as APIError).headers?.get('retry-after')).toBe('1');
    expect(await redis.xlen(stream)).toBe(60);
  });
});

describe('models and routes', () => {
  it('GET /v1/models/{id}: one model, or NotFoundError', async () => {
    expect(await api.models.retrieve('tiny')).toMatchObject({ id: 'tiny', object: 'model' });
    await expect(api.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('refuses an unknown lane, a wrong method and an unknown route in OpenAI shape', async () => {
    const call = (path: string, init: RequestInit = {}) =>
      fetch(`${gateway.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${KEY}`, ...init.headers },
      });
    const lane = await call('/v1/embeddings', {
      method: 'POST',
      headers: { 'x-streambed-lane': 'fast' },
      body: JSON.stringify({ model: 'tiny', input: 'x' }),
    });
    expect(lane.status).toBe(400);
    expect(((await lane.json()) as { error: { code: string } }).error.code).toBe('invalid_lane');
    expect((await call('/v1/embeddings')).status).toBe(405);
    expect((await call('/v1/chat/completions', { method: 'POST' })).status).toBe(404);
    const bad = await call('/v1/embeddings', { method: 'POST', body: '{"model":' });
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
  });
});

describe('operator surface', () => {
  it('/healthz, /readyz and /metrics with requests by model, code and source', async () => {
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${gateway.url}/readyz`)).text()).toBe('ready\n');
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(text).toMatch(
      /streambed_gateway_requests_total\{model="tiny",code="200",source="alpha"\} [1-9]/,
    );
    expect(text).toMatch(
      /streambed_gateway_requests_total\{model="unknown",code="404",source="alpha"\} 1/,
    );
    expect(text).toMatch(
      /streambed_gateway_request_duration_seconds_count\{model="tiny",code="200"\} [1-9]/,
    );
    expect(text).toContain('streambed_gateway_in_flight_requests 0');
    // Each tenant's usage: the counter moves by exactly a response's usage.
    const metered = async () =>
      Number(
        /streambed_gateway_tokens_total\{model="tiny",source="alpha"\} (\d+)/.exec(
          await (await fetch(`${gateway.url}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const before = await metered();
    const used = await api.embeddings.create({ model: 'tiny', input: ['metered', 'text'] });
    expect((await metered()) - before).toBe(used.usage.prompt_tokens);
    expect(text).toContain('process_resident_memory_bytes');
    // Every metric docs/gateway.md names is served.
    const doc = fs.readFileSync(new URL('../docs/gateway.md', import.meta.url), 'utf8');
    const named = new Set(doc.match(/\bstreambed_gateway_[a-z_]+\b/g));
    expect(named.size).toBeGreaterThanOrEqual(5);
    for (const name of named) expect(text, name).toContain(`# TYPE ${name} `);
  });

  it("keeps an idle keep-alive connection open past Node's 5 s default, as a load balancer expects", async () => {
    // An ALB or nginx ingress reuses an idle upstream connection for up to 60 s;
    // a gateway that closed it at 5 s would race the proxy's next request (a 502).
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ status: number; port: number; keepAlive: string }>((resolve, reject) => {
        const req = http.get(
          `${gateway.url}/v1/models`,
          { agent, headers: { authorization: `Bearer ${KEY}` } },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                port: req.socket?.localPort ?? 0,
                keepAlive: String(res.headers['keep-alive']),
              }),
            );
          },
        );
        req.on('error', reject);
      });
    const first = await get();
    expect(first).toMatchObject({ status: 200, keepAlive: 'timeout=65' });
    await new Promise((r) => setTimeout(r, 6_500));
    const second = await get();
    agent.destroy();
    // The same socket: the gateway did not close it while idle.
    expect(second).toEqual(first);
  });

  it('keeps its reply stream trimmed as it reads', async () => {
    // One per source of the keys file, each under its source (the default REPLY_TO_PATTERN).
    const streams = JSON.parse(
      /"replyStreams":(\[[^\]]*\])/.exec(gateway.output())![1]!,
    ) as string[];
    expect(streams).toHaveLength(2);
    const stream = streams.find((s) => s.startsWith(`${prefix}:reply:alpha/gateway-`))!;
    expect(streams.find((s) => s.startsWith(`${prefix}:reply:limited/gateway-`))).toBeDefined();
    await api.embeddings.create({ model: 'tiny', input: ['a b', 'c d', 'e f'] });
    await until('the reply stream is trimmed', async () => (await redis.xlen(stream)) <= 1);
    expect(await redis.ttl(stream)).toBeGreaterThan(0);
  });
});
