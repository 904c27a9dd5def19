/**
 * The answer of an entry whose every text is in (computed, stored or
 * cached): its vectors and what the result carries beside them, or the
 * `model_error` of a text that failed.
 */
import { contentHash } from '../codec/result.js';
import type { Entry } from './admit.js';
import { type Answer, errorAnswer } from './answer.js';
import { pageVector } from './page-split.js';
import type { LoadedModel } from './pool.js';

export interface EntryAnswerOptions {
  /** This worker's consumer name, in each result. */
  consumer: string;
  /** The sink stores each chunk's text: the answer carries them to it. */
  storesPassages: boolean;
}

export function entryAnswer(e: Entry, model: LoadedModel, opts: EntryAnswerOptions): Answer {
  if (e.failure) return errorAnswer(e.delivery, 'model_error', e.failure.message, e.envelope);
  return {
    delivery: e.delivery,
    id: e.envelope.id,
    source: e.envelope.source,
    ...(e.envelope.replyTo !== undefined && { replyTo: e.envelope.replyTo }),
    outcome: e.deduped ? 'deduped' : 'ok',
    ...(e.envelope.reply === 'status' && { statusOnly: true }),
    ...(e.hashes && { chunkHashes: e.hashes }),
    ...(opts.storesPassages && { chunkTexts: e.envelope.texts }),
    ok: {
      model: model.spec.name,
      dim: model.dim,
      vectors: e.vectors,
      truncated: e.truncated,
      ...(e.tokens && { tokens: e.tokens }),
      ...(e.spans && { spans: e.spans }),
      ...(e.envelope.pageVector && { pageVector: pageVector(e.vectors) }),
      hash: contentHash(e.envelope.texts),
      ...(e.envelope.meta !== undefined && { meta: e.envelope.meta }),
      ms: Math.round(e.computeMs * 100) / 100,
      worker: opts.consumer,
    },
  };
}
