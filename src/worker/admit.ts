/**
 * Admission: a delivery becomes an entry to compute, or an error answer at
 * once (undecodable, expired, a model not served here). Nothing is computed
 * and nothing is written here; the caller holds every delivery it passes in.
 */
import type { DecodeOutcome } from '../codec/envelope.js';
import { contentHash } from '../codec/result.js';
import type { StreambedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Envelope } from '../types.js';
import { type Answer, type Delivery, errorAnswer } from './answer.js';

/** One admitted entry while its texts compute. */
export interface Entry {
  delivery: Delivery;
  envelope: Envelope;
  vectors: Float32Array[];
  truncated: boolean[];
  /** Tokens the model read per chunk; set once a chunk is computed (not for stored or cached vectors). */
  tokens?: number[];
  remaining: number;
  failure?: StreambedError;
  computeMs: number;
  /** Per-chunk content hashes (only with a sink). */
  hashes?: string[];
  /** Answered from stored or cached vectors without computing. */
  deduped?: boolean;
  /** A chunked page: where each chunk lies in it (page-split.ts). */
  spans?: [number, number][];
  /** A chunked page's chunk ids, from the chunker's own check (not tokenised again). */
  encoded?: { ids: number[]; truncated: boolean }[];
}

export interface AdmitOptions {
  decode: (fields: Buffer[]) => DecodeOutcome;
  /** Is this model served (loaded) here? */
  serves: (model: string) => boolean;
  /** Keep per-chunk hashes (a sink stores them). */
  withHashes: boolean;
  log: Logger;
}

export interface Admitted {
  answers: Answer[];
  byModel: Map<string, Entry[]>;
}

export function admit(deliveries: readonly Delivery[], o: AdmitOptions): Admitted {
  const answers: Answer[] = [];
  const byModel = new Map<string, Entry[]>();
  const now = Date.now();
  for (const d of deliveries) {
    const decoded = safeDecode(d.fields, o);
    if (!decoded.ok) {
      answers.push(errorAnswer(d, decoded.code, decoded.message, decoded));
      continue;
    }
    const env = decoded.envelope;
    if (env.deadlineMs !== undefined && env.deadlineMs < now) {
      answers.push(
        errorAnswer(d, 'expired', `deadline ${env.deadlineMs} passed before work began`, env),
      );
      continue;
    }
    if (!o.serves(d.model)) {
      answers.push(errorAnswer(d, 'unknown_model', `model ${d.model} is not served here`, env));
      continue;
    }
    const entry: Entry = {
      delivery: d,
      envelope: env,
      vectors: new Array(env.texts.length),
      truncated: new Array(env.texts.length).fill(false),
      remaining: env.texts.length,
      computeMs: 0,
      ...(o.withHashes && { hashes: env.texts.map((t) => contentHash([t])) }),
    };
    const list = byModel.get(d.model) ?? [];
    list.push(entry);
    byModel.set(d.model, list);
  }
  return { answers, byModel };
}

/** Routing of an entry we will not compute (its envelope when it decodes). */
export function routingOf(
  fields: Buffer[],
  o: Pick<AdmitOptions, 'decode' | 'log'>,
): { id?: string; source?: string; replyTo?: string } {
  const decoded = safeDecode(fields, o);
  return decoded.ok ? decoded.envelope : decoded;
}

/** A decoder bug must never leak a held entry: anything it throws answers the entry `invalid`. */
function safeDecode(fields: Buffer[], o: Pick<AdmitOptions, 'decode' | 'log'>): DecodeOutcome {
  try {
    return o.decode(fields);
  } catch (err) {
    o.log.error({ err: (err as Error).message }, 'envelope decoder threw');
    return {
      ok: false,
      code: 'invalid',
      message: `undecodable entry (${(err as Error).message.slice(0, 80)})`,
    };
  }
}
