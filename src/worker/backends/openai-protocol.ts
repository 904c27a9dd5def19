/**
 * The OpenAI embeddings protocol (`POST {baseUrl}/embeddings`), without I/O:
 * the request body, the answer's vectors, and what a failure means. Spoken
 * by OpenAI, Voyage (OpenAI-compatible mode), Ollama (`/v1`),
 * text-embeddings-inference, vLLM, Infinity and LiteLLM.
 *
 * Failure classes (batch-failures.ts decides on them):
 * - 429, 5xx, 408, a timeout or a connection error: `provider_unavailable`
 *   (transient: retried whole, entries held, nothing dead-lettered). A
 *   `retry-after-ms` / `Retry-After` header becomes a fleet-wide cooldown.
 * - 400, 413, 422: the provider rejected an input: `model_error` (split until
 *   the text fails alone; it alone is answered and dead-lettered).
 * - 401, 403, 404: the key or the model is refused: `provider_refused`
 *   (transient, and the model reports not ready until an answer succeeds).
 * - 200 with an embeddings list that is not one vector per input:
 *   `provider_malformed` (retried whole a few times, then split until the
 *   text fails alone). A 200 that is not an embeddings answer at all (not
 *   JSON, no `data`: a proxy's page) is `provider_unavailable`.
 * Provider messages are cut short and never carry the key; they may name a
 * token count, never the texts (we never echo the request).
 */
import { StreambedError } from '../../errors.js';

export interface EmbeddingsAnswer {
  data: Float32Array;
  dim: number;
  /** `usage.prompt_tokens` (or `total_tokens`); undefined when the provider sends none. */
  tokens: number | undefined;
}

export function requestBody(
  model: string,
  input: readonly string[],
  opts: { dimensions?: number | undefined; encoding: 'base64' | 'float' },
): string {
  return JSON.stringify({
    model,
    input,
    encoding_format: opts.encoding,
    ...(opts.dimensions !== undefined && { dimensions: opts.dimensions }),
  });
}

interface Item {
  index?: unknown;
  embedding?: unknown;
}

/**
 * Vectors in input order (by `index`), as base64 float32 LE or JSON floats
 * whatever was asked (some servers ignore `encoding_format`). Throws
 * `provider_malformed` on an answer that is not one vector per input.
 */
export function parseEmbeddings(body: unknown, inputs: number): EmbeddingsAnswer {
  const b = body as { data?: unknown; usage?: { prompt_tokens?: unknown; total_tokens?: unknown } };
  // No embeddings list at all (an error body, another API): the provider is not answering.
  if (!Array.isArray(b?.data))
    throw new StreambedError('provider_unavailable', 'provider answer has no "data" list');
  if (b.data.length !== inputs)
    throw malformed(`expected ${inputs} embeddings, got ${b.data.length}`);
  const items = (b.data as Item[]).map((item, i) => ({
    index: typeof item?.index === 'number' ? item.index : i,
    vector: vectorOf(item?.embedding),
  }));
  items.sort((x, y) => x.index - y.index);
  const dim = items[0]?.vector.length ?? 0;
  if (dim === 0) throw malformed('empty embedding');
  const data = new Float32Array(inputs * dim);
  items.forEach((item, i) => {
    if (item.index !== i || item.vector.length !== dim)
      throw malformed('embeddings of mixed dimensions or missing indices');
    data.set(item.vector, i * dim);
  });
  const used = b.usage?.prompt_tokens ?? b.usage?.total_tokens;
  return { data, dim, tokens: typeof used === 'number' ? used : undefined };
}

function vectorOf(embedding: unknown): Float32Array {
  if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    if (bytes.length % 4 !== 0) throw malformed('base64 embedding is not float32');
    // Copy: the decoded Buffer may sit unaligned inside Node's shared pool.
    return new Float32Array(new Uint8Array(bytes).buffer);
  }
  if (Array.isArray(embedding) && embedding.every((v) => typeof v === 'number'))
    return Float32Array.from(embedding as number[]);
  throw malformed('embedding is neither base64 nor a list of numbers');
}

function malformed(why: string): StreambedError {
  return new StreambedError('provider_malformed', `provider answer malformed: ${why}`);
}

/** Retry-After as ms: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or an HTTP date. */
/**
 * A request's token count shared between its inputs in proportion to their
 * estimates (`usage` is per request), rounded so the shares add up to the
 * total exactly: a consumer summing its results' `tokens` gets the
 * provider's count.
 */
export function shareTokens(total: number, estimates: readonly number[]): Uint32Array {
  const out = new Uint32Array(estimates.length);
  const weight = estimates.reduce((a, b) => a + b, 0);
  if (estimates.length === 0 || total <= 0 || weight <= 0) return out;
  const exact = estimates.map((e) => (total * e) / weight);
  let left = total;
  exact.forEach((x, i) => {
    out[i] = Math.floor(x);
    left -= out[i] as number;
  });
  // Largest remainders first get the units rounding down left over.
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order.slice(0, left)) out[i] = (out[i] as number) + 1;
  return out;
}

export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers.get('retry-after');
  if (raw === null) return undefined;
  const s = Number(raw);
  if (raw.trim() !== '' && Number.isFinite(s)) return Math.max(0, s * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export type RequestOutcome =
  | 'ok'
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'connection'
  | 'rejected'
  | 'refused'
  | 'malformed';

/** The class of a non-2xx answer (module header), with a message safe to log. */
export function classifyStatus(
  status: number,
  providerMessage: string,
): { error: StreambedError; outcome: RequestOutcome } {
  const said = providerMessage ? `: ${providerMessage.slice(0, 200)}` : '';
  if (status === 400 || status === 413 || status === 422)
    return {
      error: new StreambedError(
        'model_error',
        `provider rejected the input (HTTP ${status})${said}`,
      ),
      outcome: 'rejected',
    };
  if (status === 401 || status === 403 || status === 404)
    return {
      error: new StreambedError('provider_refused', `provider refused (HTTP ${status})${said}`),
      outcome: 'refused',
    };
  if (status === 429)
    return {
      error: new StreambedError('provider_unavailable', `provider rate-limited (HTTP 429)${said}`),
      outcome: 'rate_limited',
    };
  return {
    error: new StreambedError('provider_unavailable', `provider failed (HTTP ${status})${said}`),
    outcome: 'server_error',
  };
}

/** fetch() threw: our deadline (`timeoutMs`) or the connection. Both transient. */
export function classifyFetchError(err: unknown): {
  error: StreambedError;
  outcome: RequestOutcome;
} {
  const name = (err as { name?: string }).name;
  if (name === 'TimeoutError' || name === 'AbortError')
    return {
      error: new StreambedError('provider_unavailable', 'provider request timed out', {
        cause: err,
      }),
      outcome: 'timeout',
    };
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return {
    error: new StreambedError(
      'provider_unavailable',
      `provider unreachable: ${String(why).slice(0, 120)}`,
      {
        cause: err,
      },
    ),
    outcome: 'connection',
  };
}

/** The `error.message` of an OpenAI-style error body, or the start of a plain one. */
export function errorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as {
      error?: { message?: unknown } | string;
      message?: unknown;
    };
    const m =
      typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof m === 'string') return m;
  } catch {
    // Not JSON (a proxy's HTML page): its first words are all we show.
  }
  return text.replace(/\s+/g, ' ').slice(0, 120);
}
