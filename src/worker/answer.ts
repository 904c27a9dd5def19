/**
 * An Answer is everything needed to finish one delivered entry: where its
 * result goes, what it says, and whether it is also dead-lettered.
 */
import type { ResultErrorCode } from '../errors.js';
import type { OkPayload } from '../types.js';

/** One entry as delivered by XREADGROUP or XCLAIM (a reclaim). */
export interface Delivery {
  stream: string;
  model: string;
  id: string;
  fields: Buffer[];
  /** 1 on first delivery; XPENDING's count for reclaimed entries. */
  deliveries: number;
  receivedAt: number;
}

export type Outcome = 'ok' | 'deduped' | 'error';

export interface Answer {
  delivery: Delivery;
  id?: string;
  source?: string;
  /** Validated reply stream; unset means the global results stream. */
  replyTo?: string;
  outcome: Outcome;
  ok?: OkPayload;
  /** The request asked for `reply: status`: the result is written without its vectors. */
  statusOnly?: boolean;
  /** Per-chunk content hashes, kept when a sink stores the vectors. */
  chunkHashes?: string[];
  /** Each chunk's text, set only when the sink stores passages (SinkStage.storesPassages). */
  chunkTexts?: string[];
  error?: { code: ResultErrorCode; message: string };
}

export function errorAnswer(
  delivery: Delivery,
  code: ResultErrorCode,
  message: string,
  routing: { id?: string; source?: string; replyTo?: string } = {},
): Answer {
  return { delivery, ...routing, outcome: 'error', error: { code, message } };
}
