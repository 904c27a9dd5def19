/**
 * Log lines fed by the worker's events, beside the metrics fed by the same
 * events: the lines an operator greps for when an entry went wrong, each with
 * the stream, the entry id (when the event carries it), the delivery count and
 * a duration. Producer mistakes (invalid input) log at info, fleet-side
 * failures at warn, per-batch detail at debug. Never page text.
 */
import type { Logger } from '../log.js';
import type { WorkerEvents } from '../worker/events.js';

/** Error codes that are the producer's doing, not the fleet's. */
const PRODUCER_CODES = new Set([
  'invalid',
  'too_large',
  'reply_to_denied',
  'unknown_model',
  'expired',
]);

export function logWorkerEvents(events: WorkerEvents, log: Logger): void {
  events.on('answered', (e) => {
    const fields = {
      model: e.model,
      stream: e.stream,
      ...(e.id !== undefined && { entry: e.id }),
      ...(e.source !== undefined && { source: e.source }),
      deliveries: e.deliveries,
      latencyMs: e.latencyMs,
    };
    if (e.outcome === 'error') {
      const level = PRODUCER_CODES.has(e.code ?? '') ? 'info' : 'warn';
      log[level]({ ...fields, code: e.code }, 'entry answered with an error and dead-lettered');
    } else if (e.deliveries > 1) {
      log.info({ ...fields, outcome: e.outcome }, 'entry answered after redelivery');
    }
  });
  events.on('fenced', (e) =>
    log.warn(
      { model: e.model, stream: e.stream, entry: e.id },
      'result not written: another consumer took the entry over (lease fence)',
    ),
  );
  events.on('split', (e) =>
    log.warn(
      { model: e.model, batchTexts: e.texts, reason: e.reason },
      'batch failed, splitting it',
    ),
  );
  events.on('batch', (e) =>
    log.debug(
      {
        model: e.model,
        batchTexts: e.texts,
        tokens: e.tokens,
        paddedTokens: e.paddedTokens,
        ms: e.ms,
      },
      'batch computed',
    ),
  );
}

/**
 * One info line per `everyMs` while the worker works, so a person watching
 * the log sees it is alive and how fast it goes: entries answered (by
 * outcome), their rate, and what the process holds now. Silent while idle.
 * Returns a function that stops it.
 */
export function logWorkSummary(
  events: WorkerEvents,
  log: Logger,
  opts: { everyMs: number; held: () => number },
): () => void {
  if (opts.everyMs <= 0) return () => undefined;
  let counts: Record<string, number> = {};
  let since = Date.now();
  events.on('answered', (e) => {
    counts[e.outcome] = (counts[e.outcome] ?? 0) + 1;
  });
  const timer = setInterval(() => {
    const answered = Object.values(counts).reduce((a, b) => a + b, 0);
    const seconds = (Date.now() - since) / 1000;
    if (answered > 0) {
      const perSecond = Math.round((answered / seconds) * 10) / 10;
      log.info(
        { answered, ...counts, perSecond, held: opts.held(), seconds: Math.round(seconds) },
        `answered ${answered} entries in ${Math.round(seconds)} s (${perSecond}/s), holding ${opts.held()}`,
      );
    }
    counts = {};
    since = Date.now();
  }, opts.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
