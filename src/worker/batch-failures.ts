/**
 * What happens to a micro-batch that failed: the one place the decision is
 * made, from the failure's class (carried in its code from where it was
 * thrown, see backend.ts).
 *
 * - input (`model_error`, anything the model threw): split in halves until the
 *   guilty text fails alone; it is answered `model_error` and dead-lettered.
 * - thread (`worker_crashed`, `timeout`): the compute died or hung under the
 *   batch. Split the same way, but a text that fails alone is retried alone,
 *   after a backoff, and dead-lettered only once it has taken down
 *   POISON_STRIKES runs by itself: a thread lost to something else (a noisy
 *   neighbour, a frozen process, a slow machine) never costs a neighbour.
 * - transient (`model_load_failed`, Redis, sink): nothing is wrong with the
 *   texts. The batch is retried whole after a backoff; the entries stay held
 *   (their leases renewed), no delivery is counted, nothing is dead-lettered.
 *   Except `provider_malformed` (a provider answered 200 with something that
 *   is not one vector per input): after MALFORMED_RETRIES whole retries it is
 *   an input failure, since a provider that always mishandles one input would
 *   otherwise hold its whole batch forever.
 */
import type { StreambedError } from '../errors.js';
import { backoffMs } from '../redis/connect.js';

export type FailureClass = 'input' | 'thread' | 'transient';

/** Runs a text may take down alone before it is poison. */
export const POISON_STRIKES = 3;

export type FailureDecision =
  { action: 'split' } | { action: 'retry'; afterMs: number } | { action: 'fail' };

/** Whole retries of a batch the provider answered malformed, before it is split. */
export const MALFORMED_RETRIES = 2;

/** `attempt`: transient retries of this batch so far. */
export function classify(err: StreambedError, attempt = 0): FailureClass {
  if (err.code === 'timeout' || err.code === 'worker_crashed') return 'thread';
  if (err.code === 'provider_malformed' && attempt >= MALFORMED_RETRIES) return 'input';
  if (err.transient) return 'transient';
  return 'input';
}

/**
 * `texts`: how many texts the failed batch had; `strikes`: for a lone text,
 * the thread failures it has already caused alone; `attempt`: transient
 * retries of this batch so far.
 */
export function decide(
  cls: FailureClass,
  texts: number,
  strikes: number,
  attempt: number,
): FailureDecision {
  if (cls === 'transient') return { action: 'retry', afterMs: backoffMs(attempt, 250, 30_000) };
  if (texts > 1) return { action: 'split' };
  if (cls === 'input' || strikes + 1 >= POISON_STRIKES) return { action: 'fail' };
  return { action: 'retry', afterMs: 100 + backoffMs(strikes, 250, 5_000) };
}
