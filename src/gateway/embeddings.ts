/**
 * One `POST /v1/embeddings`, from a validated request to OpenAI's response.
 *
 * Each input becomes its own envelope on the model's stream, all added in
 * one pipelined round trip (the SDK's `submit`): workers micro-batch across
 * envelopes by token count, so a request's inputs spread over every thread
 * and worker of the fleet and pack with other requests' texts, and a crash
 * costs a reclaim of the inputs that worker held, not the whole request.
 * The price is one result entry per input instead of one per request.
 * Envelopes carry `deadline_ms` = the request's timeout, so work the caller
 * has given up on is answered `expired` instead of computed.
 */
import { randomUUID } from 'node:crypto';

import type { StreambedClient } from '../client/client.js';
import { StreambedError, toStreambedError } from '../errors.js';
import type { Lane } from '../keys.js';
import { isOutOfMemory } from '../redis/out-of-memory.js';
import type { EmbedResult } from '../types.js';
import { REDIS_WAIT_MS, withDeadline } from './deadline.js';
import type { ModelCatalog } from './model-catalog.js';
import {
  badRequest,
  type EmbeddingsRequest,
  embeddingsResponse,
  estimateTokens,
  GatewayError,
  modelNotFound,
  requestTooLarge,
  shortenVector,
} from './openai-shapes.js';
import type { ReplyRouter } from './reply-router.js';

export interface EmbedDeps {
  /** The SDK's submit, or a SubmitCoalescer batching concurrent requests into one write. */
  client: Pick<StreambedClient, 'submit'>;
  router: ReplyRouter;
  catalog: ModelCatalog;
  /** Text of one input (it is one envelope): MAX_ENVELOPE_BYTES. */
  maxEnvelopeBytes: number;
  /** GATEWAY_MAX_INPUTS. */
  maxInputs: number;
  /** Text of all inputs together: GATEWAY_MAX_REQUEST_BYTES. */
  maxRequestBytes: number;
  timeoutMs: number;
  /** GATEWAY_LONG_INPUT: the default for requests without X-Streambed-Long-Input. */
  longInput: LongInput;
}

/**
 * An input longer than its model reads: its first tokens embedded
 * (`truncate`), the whole of it as the normalised mean of its chunks'
 * vectors (`chunk`: the worker's page chunking and `page_vector`), or a 400
 * (`error`, as OpenAI answers).
 */
export type LongInput = 'truncate' | 'chunk' | 'error';

export interface EmbedContext {
  source: string;
  lane: Lane;
  longInput: LongInput;
}

export async function embed(
  deps: EmbedDeps,
  req: EmbeddingsRequest,
  { source, lane, longInput }: EmbedContext,
): Promise<ReturnType<typeof embeddingsResponse>> {
  const { model, inputs } = req;
  const served =
    deps.catalog.hasNow(model) ?? (await withDeadline(deps.catalog.has(model), REDIS_WAIT_MS));
  if (!served) throw modelNotFound(model);
  checkLimits(deps, inputs);
  const known = deps.catalog.dimension(model);
  const shorter = deps.catalog.shorterSizes(model);
  if (req.dimensions !== undefined && known !== undefined && !fits(req.dimensions, known, shorter))
    throw unsupportedDimensions(model, known, req.dimensions, shorter);

  // Before anything waits: a source the workers' REPLY_TO_PATTERN refuses throws (reply-streams.ts).
  const replyTo = deps.router.streamFor(source);
  const base = randomUUID();
  const ids = inputs.map((_, i) => `gw-${base}-${i}`);
  const waiting = deps.router.wait(ids, deps.timeoutMs);
  const deadlineMs = Date.now() + deps.timeoutMs;
  try {
    const rids = await withDeadline(
      deps.client.submit(
        // One embedding per input (OpenAI's contract): one vector, or one page vector of its chunks.
        inputs.map((text, i) => ({
          id: ids[i] as string,
          source,
          text,
          deadlineMs,
          chunk: longInput === 'chunk',
          ...(longInput === 'chunk' && { pageVector: true }),
        })),
        { model, lane, replyTo },
      ),
      deps.timeoutMs,
    );
    waiting.bind(rids);
  } catch (err) {
    waiting.cancel();
    if (err instanceof GatewayError) throw err;
    const e = toStreambedError(err);
    if (e.code === 'backpressure')
      throw new GatewayError(
        429,
        'rate_limit_error',
        'backlog_full',
        `model '${model}' has too much queued work; retry later`,
        null,
        1,
      );
    // Redis at maxmemory (noeviction) refuses new entries: the fleet is up and full.
    if (isOutOfMemory(err))
      throw new GatewayError(
        503,
        'server_error',
        'redis_full',
        "the fleet's Redis is out of memory and refuses new work; retry later",
        null,
        5,
      );
    throw new GatewayError(503, 'server_error', 'unavailable', 'the fleet cannot be reached');
  }

  let results: EmbedResult[];
  try {
    results = await waiting.results;
  } catch (err) {
    if (err instanceof StreambedError && err.code === 'timeout')
      throw new GatewayError(
        504,
        'server_error',
        'timeout',
        `no answer within ${deps.timeoutMs} ms`,
      );
    throw err;
  }
  if (longInput === 'error') refuseTruncated(results);
  const vectors = results.map((r) => vectorOf(r, model));
  const dim = vectors[0]?.length ?? 0;
  deps.catalog.noteDimension(model, dim);
  const size = req.dimensions ?? dim;
  if (!fits(size, dim, shorter)) throw unsupportedDimensions(model, dim, size, shorter);
  const normalize = deps.catalog.normalizes(model);
  const sized = size < dim ? vectors.map((v) => shortenVector(v, size, normalize)) : vectors;
  return embeddingsResponse(model, sized, req.encoding, promptTokens(results, inputs));
}

/** The full size, or a shorter one the model's MODELS entry allows (Matryoshka models). */
function fits(size: number, dim: number, shorter: readonly number[]): boolean {
  return size === dim || (size < dim && shorter.includes(size));
}

/**
 * `usage.prompt_tokens`: what the workers' tokenizers counted (a remote
 * model: its provider's usage), and an estimate only for an input answered
 * from vectors the sink already held, which carries no count.
 */
function promptTokens(results: readonly EmbedResult[], inputs: readonly string[]): number {
  let n = 0;
  results.forEach((r, i) => {
    const counted = r.status === 'ok' ? r.res.tokens : undefined;
    n += counted ? counted.reduce((a, b) => a + b, 0) : estimateTokens([inputs[i] as string]);
  });
  return n;
}

/**
 * Each input is one envelope (MAX_ENVELOPE_BYTES of text); a request holds
 * at most GATEWAY_MAX_INPUTS of them and GATEWAY_MAX_REQUEST_BYTES of text in
 * all.
 */
function checkLimits(deps: EmbedDeps, inputs: readonly string[]): void {
  checkInputCount(deps, inputs.length);
  let total = 0;
  inputs.forEach((text, i) => {
    const bytes = Buffer.byteLength(text, 'utf8');
    total += bytes;
    if (bytes > deps.maxEnvelopeBytes)
      throw requestTooLarge(
        `input[${i}] is ${bytes} bytes of text, over the limit of ${deps.maxEnvelopeBytes} per input`,
        'input',
      );
  });
  if (total > deps.maxRequestBytes)
    throw requestTooLarge(
      `input is ${total} bytes of text, over the limit of ${deps.maxRequestBytes} per request`,
      'input',
    );
}

/** GATEWAY_MAX_INPUTS; also checked before token ids are decoded, so a huge list costs no decoding. */
export function checkInputCount(deps: Pick<EmbedDeps, 'maxInputs'>, count: number): void {
  if (count > deps.maxInputs)
    throw badRequest(
      `${count} inputs exceed the limit of ${deps.maxInputs} per request`,
      'input',
      'too_many_inputs',
    );
}

function unsupportedDimensions(
  model: string,
  dim: number,
  asked: number,
  shorter: readonly number[],
): GatewayError {
  const sizes = [...shorter.filter((n) => n < dim), dim];
  const can = sizes.length > 1 ? `can return ${sizes.join(', ')}` : 'cannot return other sizes';
  return badRequest(
    `model '${model}' returns ${dim}-dimensional vectors and ${can}, not ${asked}; omit dimensions or send one of those`,
    'dimensions',
    'unsupported_dimensions',
  );
}

/** `error` mode: an input the model read only in part is a 400 (after computing it: only the worker knows). */
function refuseTruncated(results: readonly EmbedResult[]): void {
  const cut = results.findIndex((r) => r.status === 'ok' && r.res.truncated.some(Boolean));
  if (cut >= 0)
    throw badRequest(
      `input[${cut}] is longer than the model reads; send shorter text, or X-Streambed-Long-Input: chunk to embed it whole`,
      'input',
      'input_too_long',
    );
}

/**
 * One input's vector, or a worker's error answer as an HTTP error (the first
 * failed input decides). A chunked input (`chunk` mode) of one chunk is that
 * chunk's vector; of several, their page vector.
 */
function vectorOf(r: EmbedResult, model: string): Float32Array {
  if (r.status === 'ok')
    return (r.res.vectors.length > 1 ? r.res.pageVector : r.res.vectors[0]) as Float32Array;
  const { code, message } = r.res;
  switch (code) {
    case 'invalid':
    case 'too_large':
      throw badRequest(message, 'input', code);
    case 'unknown_model':
      throw modelNotFound(model);
    case 'expired':
      throw new GatewayError(504, 'server_error', 'timeout', message);
    case 'model_error':
    case 'max_deliveries':
      // This input fails (or took its run down) every time: a 5xx would have the client's
      // SDK send it again (OpenAI's retry 5xx twice), computing and dead-lettering it again.
      throw new GatewayError(422, 'invalid_request_error', code, message, 'input');
    default:
      throw new GatewayError(500, 'server_error', code, message);
  }
}
