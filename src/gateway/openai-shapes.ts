/**
 * The OpenAI embeddings API as the gateway speaks it: the request schema,
 * the response and error bodies, and the one error type every handler
 * throws (status + OpenAI error fields), so a route never builds an error
 * body by hand.
 */
import { z } from 'zod';

import { l2normalize } from '../../workers/l2normalize.js';

export type ErrorType =
  'invalid_request_error' | 'authentication_error' | 'rate_limit_error' | 'server_error';

/** An answer other than 200, in OpenAI's error shape; `retryAfterS` sets Retry-After. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: string } } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

export const badRequest = (message: string, param: string | null = null, code = 'invalid_value') =>
  new GatewayError(400, 'invalid_request_error', code, message, param);

/** 413: the body, one input or all of them over their limit. */
export const requestTooLarge = (message: string, param: string | null = null) =>
  new GatewayError(413, 'invalid_request_error', 'request_too_large', message, param);

export const modelNotFound = (model: string) =>
  new GatewayError(
    404,
    'invalid_request_error',
    'model_not_found',
    `The model '${model}' does not exist (GET /v1/models lists the models the fleet serves)`,
    'model',
  );

const requestSchema = z.object({
  model: z.string().min(1, 'model is required'),
  input: z.union([
    z.string(),
    z.array(z.string()),
    // cl100k_base token ids, as LangChain's OpenAIEmbeddings sends them (token-ids.ts).
    z.array(z.number()),
    z.array(z.array(z.number())),
  ]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
});

export interface EmbeddingsRequest {
  model: string;
  /** The texts; empty while `tokenIds` holds the inputs (decoded by the route: token-ids.ts). */
  inputs: string[];
  /** Inputs sent as cl100k_base token ids, one list per input. */
  tokenIds?: number[][];
  encoding: 'float' | 'base64';
  dimensions?: number;
}

/** Validate a parsed JSON body; throws GatewayError 400 naming the parameter. */
export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  const parsed = requestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue?.path[0] !== undefined ? String(issue.path[0]) : null;
    const message =
      param === 'input'
        ? 'input must be a string or an array of strings'
        : `${param ?? 'body'}: ${issue?.message ?? 'invalid'}`;
    throw badRequest(message, param);
  }
  const { model, input, encoding_format, dimensions } = parsed.data;
  const list: unknown[] = typeof input === 'string' ? [input] : input;
  if (list.length === 0) throw badRequest('input is empty', 'input');
  const common = {
    model,
    encoding: encoding_format ?? 'float',
    ...(dimensions !== undefined && { dimensions }),
  } as const;
  if (typeof list[0] !== 'string') {
    // One list of ids, or a list of them.
    const lists = (typeof list[0] === 'number' ? [list] : list) as number[][];
    const bad = lists.findIndex((ids) => ids.length === 0 || !ids.every(isTokenId));
    if (bad >= 0)
      throw badRequest(
        `input[${bad}]: token ids must be cl100k_base ids (integers 0-${CL100K_MAX_ID}), as tiktoken gives them; or send text`,
        'input',
        'invalid_token_ids',
      );
    return { ...common, inputs: [], tokenIds: lists };
  }
  const inputs = list as string[];
  const blank = inputs.findIndex((t) => t.trim().length === 0);
  if (blank >= 0) throw badRequest(`input[${blank}] is empty`, 'input');
  return { ...common, inputs };
}

/** Ids cl100k_base defines (token-ids.ts): ranks 0-100255 and its special tokens up to <|endofprompt|>. */
const CL100K_MAX_ID = 100276;
const isTokenId = (id: number) => Number.isInteger(id) && id >= 0 && id <= CL100K_MAX_ID;

/** A vector as OpenAI returns it: numbers, or base64 of its little-endian float32 bytes. */
export function encodeVector(v: Float32Array, encoding: 'float' | 'base64'): number[] | string {
  // float32 -> double is exact and JSON prints the shortest double that reads back the same.
  if (encoding === 'float') return Array.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/**
 * A Matryoshka model's vector cut to its first `size` components, and
 * L2-normalised again when the model's vectors are normalised: what OpenAI's
 * `dimensions` returns for text-embedding-3 models.
 */
export function shortenVector(v: Float32Array, size: number, normalize: boolean): Float32Array {
  const out = v.slice(0, size);
  return normalize ? l2normalize(out) : out;
}

export function embeddingsResponse(
  model: string,
  vectors: readonly Float32Array[],
  encoding: 'float' | 'base64',
  promptTokens: number,
) {
  return {
    object: 'list',
    data: vectors.map((v, index) => ({
      object: 'embedding',
      index,
      embedding: encodeVector(v, encoding),
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

export function modelsResponse(models: readonly string[], created: number) {
  return {
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created, owned_by: 'streambed' })),
  };
}

/**
 * An estimate of a WordPiece count, for inputs whose result carries no
 * count of the worker's (answered from stored or cached vectors): words,
 * numbers and each punctuation mark, plus [CLS] and [SEP] per input.
 */
export function estimateTokens(inputs: readonly string[]): number {
  let n = 0;
  for (const t of inputs) n += (t.match(/\p{L}+|\p{N}+|[^\s\p{L}\p{N}]/gu)?.length ?? 0) + 2;
  return n;
}
