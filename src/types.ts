/** Public types shared by the SDK, the CLI and the worker. */
import type { ResultErrorCode } from './errors.js';

export type { ResultErrorCode } from './errors.js';
export type { Lane } from './keys.js';

/** What a producer submits: one page or chunk of text (or several chunks). */
export interface Page {
  id: string;
  source: string;
  text?: string;
  texts?: string[];
  meta?: Record<string, unknown>;
  /** Epoch ms after which the entry is answered `expired` instead of computed. */
  deadlineMs?: number;
}

/**
 * What an ok result carries (envelope field `reply`): `vectors` (the default)
 * or `status`, the same result without its vectors, for producers whose
 * vectors go elsewhere (a sink) and who only need to know a page is done.
 */
export type ReplyMode = 'vectors' | 'status';

/** A validated request envelope, as the worker sees it. */
export interface Envelope {
  id: string;
  source: string;
  texts: string[];
  /** True when the producer sent `text` (one string) rather than `texts`. */
  single: boolean;
  replyTo?: string;
  meta?: Record<string, unknown>;
  deadlineMs?: number;
  /** Set when the producer asked for `reply: status`. */
  reply?: 'status';
}

export interface OkPayload {
  model: string;
  dim: number;
  /** One L2-normalised (when configured) vector per chunk; empty in a `reply: status` result. */
  vectors: Float32Array[];
  truncated: boolean[];
  /** A chunked page: each chunk's `[start, end)` in the page's text, in UTF-16 code units. */
  spans?: [number, number][];
  hash: string;
  /** The request's meta as sent; a msgpack int64/uint64 in it (other languages' producers) reads as a BigInt. */
  meta?: Record<string, unknown>;
  ms: number;
  worker: string;
}

export interface ErrorPayload {
  code: ResultErrorCode;
  message: string;
}

interface ResultBase {
  /** Id of the result entry on its stream. */
  resultId: string;
  id: string;
  source: string;
  /** Id of the request entry this answers. */
  rid: string;
}

export type EmbedResult =
  | (ResultBase & { status: 'ok'; res: OkPayload })
  | (ResultBase & { status: 'error'; res: ErrorPayload });
