/**
 * A stand-in embeddings provider on loopback speaking the OpenAI protocol
 * (`POST /v1/embeddings`), for tests (test/helpers/fake-provider.ts) and
 * `bench/remote.ts`: deterministic vectors from a hash of each text, base64
 * or JSON floats as asked, `usage` tokens, a bearer key check (401), a limit
 * on inputs per request (400 above it), texts it rejects (400), 429s with
 * `Retry-After` on a schedule (and 429 to anything arriving inside a window
 * it announced, as a real provider would), a few 503s, a refusal of base64
 * (422) as float-only servers do, NaN vectors for chosen inputs, answers
 * that leave chosen inputs out, an HTML page with a 200, a fixed latency. It
 * records every request:
 * arrival time, status, and a hash of each input (never the text).
 *
 * What it does not cover: real tokenisation (usage is ~4 characters a token),
 * a provider's own rate-limit algorithm (its 429s come from the schedule, not
 * from counting), HTTP/2, compression, streaming or slow bodies, gateways that
 * answer HTML, partial answers, timeouts, and how a provider bills a
 * timed-out request.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeProviderOptions {
  dim?: number;
  /** Bearer key required (unset: none). */
  key?: string;
  /** More inputs than this in one request: 400. */
  maxInputs?: number;
  /** Delay before each answer. */
  latencyMs?: number;
  /** Request number (1-based, all requests) -> answer 429 with this Retry-After in ms. */
  rateLimitAt?: ReadonlyMap<number, number>;
  /** Request numbers answered 503 (no Retry-After). */
  unavailableAt?: ReadonlySet<number>;
  /** Inputs it rejects with 400 (the whole request, as providers do). */
  rejects?: (text: string) => boolean;
  /** Answer JSON floats even when base64 is asked (servers that ignore encoding_format). */
  alwaysFloat?: boolean;
  /** Answer 422 to `encoding_format: base64` (servers that only know floats). */
  refuseBase64?: boolean;
  /** Inputs answered with a vector of NaN (a GPU server overflowing in fp16; base64 carries it). */
  nan?: (text: string) => boolean;
  /** Inputs left out of a 200 answer (a server that skips what it cannot embed). */
  drops?: (text: string) => boolean;
  /** Request numbers answered 200 with an HTML page (a proxy's maintenance page). */
  htmlAt?: ReadonlySet<number>;
}

export interface ProviderRequest {
  n: number;
  at: number;
  status: number;
  /** sha1 of each input, in order. */
  inputs: string[];
  /** Retry-After (ms) of a scheduled 429 (one inside an announced window has none). */
  retryAfterMs?: number;
}

export interface FakeProvider {
  /** `http://127.0.0.1:PORT/v1` (the model's baseUrl). */
  baseUrl: string;
  requests: ProviderRequest[];
  /** Texts it computed (answered 200), by hash, with how many times. */
  computed: Map<string, number>;
  close(): Promise<void>;
}

export function textHash(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** The vector the stand-in answers for a text (unit length, from its hash). */
export function fakeVector(text: string, dim: number): Float32Array {
  const seed = createHash('sha256').update(text).digest();
  const v = Float32Array.from(
    { length: dim },
    (_, i) => ((seed[i % 32] as number) - 127.5) / 127.5 + i * 1e-3,
  );
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

export async function startFakeProvider(opts: FakeProviderOptions = {}): Promise<FakeProvider> {
  const dim = opts.dim ?? 16;
  const requests: ProviderRequest[] = [];
  const computed = new Map<string, number>();
  let windowUntil = 0;
  let n = 0;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      const num = ++n;
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as {
        input?: string[] | string;
        encoding_format?: string;
        dimensions?: number;
      };
      const input = typeof body.input === 'string' ? [body.input] : (body.input ?? []);
      const record: ProviderRequest = { n: num, at, status: 200, inputs: input.map(textHash) };
      requests.push(record);
      const answer = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        setTimeout(() => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(payload));
        }, opts.latencyMs ?? 0);
      };
      const error = (status: number, message: string, headers?: Record<string, string>) =>
        answer(status, { error: { message, type: 'invalid_request_error' } }, headers);

      if (req.url !== '/v1/embeddings' || req.method !== 'POST') return error(404, 'no such route');
      if (opts.key && req.headers.authorization !== `Bearer ${opts.key}`)
        return error(401, 'Incorrect API key provided');
      const scheduled = opts.rateLimitAt?.get(num);
      if (scheduled !== undefined || at < windowUntil) {
        const ms = scheduled ?? windowUntil - at;
        windowUntil = Math.max(windowUntil, at + ms);
        if (scheduled !== undefined) record.retryAfterMs = ms;
        return error(429, 'Rate limit reached', {
          'retry-after-ms': String(ms),
          'retry-after': String(Math.ceil(ms / 1000)),
        });
      }
      if (opts.unavailableAt?.has(num)) return error(503, 'overloaded');
      if (opts.htmlAt?.has(num)) {
        record.status = 200;
        res.writeHead(200, { 'content-type': 'text/html' });
        return void res.end('<html><body>Down for maintenance</body></html>');
      }
      if (opts.refuseBase64 && body.encoding_format === 'base64')
        return error(422, 'unknown variant `base64`, expected `float`');
      if (opts.maxInputs !== undefined && input.length > opts.maxInputs)
        return error(400, `too many inputs: ${input.length} > ${opts.maxInputs}`);
      const bad = input.findIndex((t) => opts.rejects?.(t));
      if (bad >= 0) return error(400, `input ${bad} is invalid`);
      const size = body.dimensions ?? dim;
      const base64 = body.encoding_format === 'base64' && !opts.alwaysFloat;
      for (const h of record.inputs) computed.set(h, (computed.get(h) ?? 0) + 1);
      const tokens = input.reduce((s, t) => s + Math.ceil(t.length / 4), 0);
      answer(200, {
        object: 'list',
        model: 'fake',
        // Reversed, so a client that ignores `index` gets the wrong order.
        data: input
          .map((t, index) => ({ t, index }))
          .filter(({ t }) => !opts.drops?.(t))
          .map(({ t, index }) => {
            const v = opts.nan?.(t) ? new Float32Array(size).fill(NaN) : fakeVector(t, size);
            const embedding = base64 ? Buffer.from(v.buffer).toString('base64') : Array.from(v);
            return { object: 'embedding', index, embedding };
          })
          .reverse(),
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    computed,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
