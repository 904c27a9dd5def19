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
  /**
   * Split `text` into token windows of the model's own tokenizer (docs/design.md,
   * "Chunking"): `true` with the model's window and overlap, or your own; `false`
   * never (even where the model chunks by default). Unset: the model's default, off
   * unless its MODELS entry says `chunk=true`.
   */
  chunk?: ChunkRequest;
  /** Also answer one page vector: the normalised mean of the chunk vectors. */
  pageVector?: boolean;
}

/** Chunking asked for by one envelope (`chunk`). */
export type ChunkRequest = boolean | { window?: number; overlap?: number };

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
  chunk?: ChunkRequest;
  pageVector?: true;
}

export interface OkPayload {
  model: string;
  dim: number;
  /** One L2-normalised (when configured) vector per chunk; empty in a `reply: status` result. */
  vectors: Float32Array[];
  truncated: boolean[];
  /**
   * Tokens the model read per chunk, special tokens included, after any
   * truncation (a remote model: its provider's `usage` for the request,
   * shared between the request's inputs by their estimated length, adding up to it). Absent for vectors the sink
   * already held (its table keeps no count), or cached before counts were kept.
   */
  tokens?: number[];
  /**
   * A chunked page's `[start, end)` per chunk: offsets into the page's `text` in
   * UTF-16 code units (JavaScript string indices), so `text.slice(start, end)`
   * is the exact passage the chunk's vector embeds.
   */
  spans?: [number, number][];
  /** With `pageVector`: the L2-normalised mean of the chunk vectors (wire name `page_vector`). */
  pageVector?: Float32Array;
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
