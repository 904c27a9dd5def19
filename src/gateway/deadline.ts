/**
 * A bound on a wait for Redis on the request path. Connections queue
 * commands while Redis is away (ioredis' offline queue, so the fleet rides
 * out a failover), which would leave an HTTP request hanging for the whole
 * outage: past the bound the request is answered 503 instead. The command
 * itself may still run once Redis is back (an envelope then carries its
 * deadline_ms and is answered `expired`, not computed).
 */
import { GatewayError } from './openai-shapes.js';

/** How long a request waits for a Redis read it needs before it can queue work. */
export const REDIS_WAIT_MS = 2_000;

/** A value known now is taken as it is: no timer, no extra turn (the common path). */
export function withDeadline<T>(work: Promise<T> | T, ms: number): Promise<T> | T {
  if (!(work instanceof Promise)) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new GatewayError(503, 'server_error', 'unavailable', 'the fleet cannot be reached')),
      ms,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
