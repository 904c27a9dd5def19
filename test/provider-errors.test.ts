/**
 * A remote provider's answers, classified without I/O
 * (src/worker/backends/openai-protocol.ts), and the class each failure
 * takes in the one decision (batch-failures.ts); the MODELS options of a
 * remote model (models/remote-options.ts).
 */
import { describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import { formatModelTable, modelRef, parseModelTable } from '../src/models/table.js';
import {
  classifyFetchError,
  classifyStatus,
  errorMessage,
  parseEmbeddings,
  requestBody,
  retryAfterMs,
  shareTokens,
} from '../src/worker/backends/openai-protocol.js';
import { classify, decide } from '../src/worker/batch-failures.js';

const b64 = (v: number[]) => Buffer.from(Float32Array.from(v).buffer).toString('base64');

describe('provider failures by class', () => {
  it.each([
    [429, 'provider_unavailable', 'rate_limited', 'transient'],
    [500, 'provider_unavailable', 'server_error', 'transient'],
    [502, 'provider_unavailable', 'server_error', 'transient'],
    [503, 'provider_unavailable', 'server_error', 'transient'],
    [408, 'provider_unavailable', 'server_error', 'transient'],
    [400, 'model_error', 'rejected', 'input'],
    [413, 'model_error', 'rejected', 'input'],
    [422, 'model_error', 'rejected', 'input'],
    [401, 'provider_refused', 'refused', 'transient'],
    [403, 'provider_refused', 'refused', 'transient'],
    [404, 'provider_refused', 'refused', 'transient'],
  ] as const)('HTTP %i is %s (%s), class %s', (status, code, outcome, cls) => {
    const r = classifyStatus(status, 'said something');
    expect(r.error.code).toBe(code);
    expect(r.outcome).toBe(outcome);
    expect(r.error.message).toContain(`HTTP ${status}`);
    expect(classify(r.error)).toBe(cls);
  });

  it('transient failures retry the whole batch (no strike, nothing failed); a rejected input splits, then fails alone', () => {
    const busy = classifyStatus(429, '').error;
    expect(decide(classify(busy), 64, 0, 0)).toMatchObject({ action: 'retry' });
    expect(decide(classify(busy), 1, 0, 7)).toMatchObject({ action: 'retry' });
    const refused = classifyStatus(401, '').error;
    expect(decide(classify(refused), 1, 0, 0)).toMatchObject({ action: 'retry' });
    const rejected = classifyStatus(400, '').error;
    expect(decide(classify(rejected), 64, 0, 0)).toEqual({ action: 'split' });
    expect(decide(classify(rejected), 1, 0, 0)).toEqual({ action: 'fail' });
  });

  it('timeouts and connection errors are transient', () => {
    const timeout = classifyFetchError(Object.assign(new Error('x'), { name: 'TimeoutError' }));
    expect(timeout).toMatchObject({ outcome: 'timeout', error: { code: 'provider_unavailable' } });
    const refused = classifyFetchError(
      Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }),
    );
    expect(refused.outcome).toBe('connection');
    expect(refused.error.message).toContain('ECONNREFUSED');
    expect(classify(refused.error)).toBe('transient');
  });

  it('reads retry-after-ms, Retry-After seconds and HTTP dates', () => {
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '1500', 'retry-after': '9' }))).toBe(1500);
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }))).toBe(2000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(
      3000,
    );
    expect(retryAfterMs(new Headers())).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }))).toBeUndefined();
  });

  it("keeps the provider's message short and takes error.message out of JSON", () => {
    expect(errorMessage('{"error":{"message":"Incorrect API key"}}')).toBe('Incorrect API key');
    expect(errorMessage('{"error":"model not found"}')).toBe('model not found');
    expect(errorMessage(`<html>${'x'.repeat(500)}</html>`).length).toBeLessThanOrEqual(120);
    expect(classifyStatus(400, 'y'.repeat(1000)).error.message.length).toBeLessThan(260);
  });
});

describe('provider answers', () => {
  it("shares a request's usage between its inputs by their estimates, adding up exactly", () => {
    expect(Array.from(shareTokens(7, [1, 1]))).toEqual([4, 3]);
    expect(Array.from(shareTokens(100, [10, 30, 60]))).toEqual([10, 30, 60]);
    const shares = shareTokens(101, [3, 5, 7, 11]);
    expect(shares.reduce((a, b) => a + b, 0)).toBe(101);
    // In proportion: the longest input's share is the largest.
    expect(Math.max(...shares)).toBe(shares[3]);
    expect(Array.from(shareTokens(0, [2, 2]))).toEqual([0, 0]);
    expect(Array.from(shareTokens(5, []))).toEqual([]);
  });

  it('decodes base64 and float vectors in index order, with usage tokens', () => {
    const out = parseEmbeddings(
      {
        data: [
          { index: 1, embedding: [3, 4] },
          { index: 0, embedding: b64([1, 2]) },
        ],
        usage: { prompt_tokens: 7, total_tokens: 7 },
      },
      2,
    );
    expect(out.dim).toBe(2);
    expect(Array.from(out.data)).toEqual([1, 2, 3, 4]);
    expect(out.tokens).toBe(7);
  });

  it('refuses answers that are not one vector per input of one dimension (transient, never a wrong vector)', () => {
    const bad = (body: unknown, n: number) => () => parseEmbeddings(body, n);
    expect(bad({ data: [{ index: 0, embedding: [1] }] }, 2)).toThrow(/expected 2/);
    expect(
      bad(
        {
          data: [
            { index: 0, embedding: [1, 2] },
            { index: 1, embedding: [1] },
          ],
        },
        2,
      ),
    ).toThrow(/mixed/);
    expect(bad({ data: [{ index: 0, embedding: 'abc' }] }, 1)).toThrow(StreambedError);
    try {
      parseEmbeddings({}, 1);
    } catch (err) {
      expect((err as StreambedError).code).toBe('provider_unavailable');
    }
  });

  it('asks for base64 and sends dimensions only when set', () => {
    expect(JSON.parse(requestBody('m', ['a'], { encoding: 'base64' }))).toEqual({
      model: 'm',
      input: ['a'],
      encoding_format: 'base64',
    });
    expect(
      JSON.parse(requestBody('m', ['a'], { encoding: 'float', dimensions: 256 })),
    ).toMatchObject({
      encoding_format: 'float',
      dimensions: 256,
    });
  });
});

describe('remote models in MODELS', () => {
  const table =
    'embed=openai:text-embedding-3-small;baseUrl=http://127.0.0.1:9/v1;apiKeyEnv=OPENAI_API_KEY;rpm=3000;tpm=1000000;maxInputs=128;concurrency=2;dimensions=256;budgetTokensPerDay=5000000,tiny=fixture:8';

  it('parses the options, round-trips, and keeps limits and the key name out of the model reference', () => {
    const [embed, tiny] = parseModelTable(table, '/srv');
    expect(embed?.remote).toMatchObject({
      baseUrl: 'http://127.0.0.1:9/v1',
      apiKeyEnv: 'OPENAI_API_KEY',
      rpm: 3000,
      tpm: 1_000_000,
      maxInputs: 128,
      concurrency: 2,
      dimensions: 256,
      budgetTokensPerDay: 5_000_000,
      encoding: 'base64',
      timeoutMs: 30_000,
    });
    expect(tiny?.remote).toBeUndefined();
    const specs = parseModelTable(table, '/srv');
    expect(parseModelTable(formatModelTable(specs), '/srv')).toEqual(specs);
    const ref = modelRef(embed!);
    expect(ref).toBe('openai:text-embedding-3-small;baseUrl=http://127.0.0.1:9/v1;dimensions=256');
    expect(ref).not.toMatch(/OPENAI_API_KEY|rpm|budget/);
  });

  it('names a bad or unknown option, and refuses local options on a remote model', () => {
    expect(() => parseModelTable('e=openai:m;rpm=0')).toThrow(/model "e" option rpm/);
    expect(() => parseModelTable('e=openai:m;dtype=q8')).toThrow(/option dtype/);
    expect(() => parseModelTable('e=openai:m;apiKeyEnv=sk-123')).toThrow(
      /environment variable name/,
    );
    expect(() => parseModelTable('e=openai:')).toThrow(/no provider model/);
    expect(() => parseModelTable('e=openai:m;baseUrl=ftp://x')).toThrow(/http/);
  });
});
