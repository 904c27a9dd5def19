/**
 * One text of an entry on its way through the pool (`TextItem`), and what a
 * finished batch does to its texts: each vector goes into its entry, in
 * one pass that also counts tokens, per text for its result and per source
 * for the metrics. A vector with
 * NaN or Infinity is held back (in-flight.ts runs its text again alone), and
 * a text an earlier run already answered is left as it is.
 */
import type { EmbedTaskResult } from '../../workers/embed-worker.js';
import type { Entry } from './admit.js';

export interface TextItem {
  entry: Entry;
  chunk: number;
  text: string;
  tokens: number;
  /** Token ids, cut to the model's limit (models with a main-thread tokenizer). */
  encoded?: { ids: number[]; truncated: boolean };
  seq: number;
  urgent: boolean;
  /** Answered (vector in, or failed): a second run of it changes nothing. */
  done: boolean;
  /** Runs this text took down alone (thread died or hung): poison at POISON_STRIKES. */
  strikes: number;
}

export interface Spread {
  /** Entries whose last text this batch answered. */
  done: Entry[];
  /** Texts whose vector has NaN or Infinity: not answered. */
  nonFinite: TextItem[];
  tokens: number;
  bySource: Map<string, number>;
}

/** Put the batch's vectors into their entries (`items` in the batch's order). */
export function spreadVectors(items: readonly TextItem[], out: EmbedTaskResult): Spread {
  const spread: Spread = { done: [], nonFinite: [], tokens: 0, bySource: new Map() };
  items.forEach((item, k) => {
    const source = item.entry.envelope.source;
    const n = out.tokens[k] ?? 0;
    spread.tokens += n;
    spread.bySource.set(source, (spread.bySource.get(source) ?? 0) + n);
    // An overdue run that finishes still answers whatever its retries have not.
    if (item.done) return;
    const vector = out.data.subarray(k * out.dim, (k + 1) * out.dim);
    if (!allFinite(vector)) return void spread.nonFinite.push(item);
    item.done = true;
    item.entry.vectors[item.chunk] = vector;
    item.entry.truncated[item.chunk] = out.truncated[k] === 1;
    (item.entry.tokens ??= new Array<number>(item.entry.vectors.length).fill(0))[item.chunk] = n;
    item.entry.computeMs += out.ms / items.length;
    if (--item.entry.remaining === 0) spread.done.push(item.entry);
  });
  return spread;
}

function allFinite(vector: Float32Array): boolean {
  for (let d = 0; d < vector.length; d++) if (!Number.isFinite(vector[d])) return false;
  return true;
}
