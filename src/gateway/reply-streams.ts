/**
 * The gateway's reply stream for each source, `{prefix}:reply:{source}/gateway-{name}`,
 * checked against the pattern the workers enforce (REPLY_TO_PATTERN). A
 * fleet whose pattern refuses these streams would dead-letter every request
 * the gateway submits (`reply_to_denied`, the texts in the DLQ) while each
 * request waited for its 504: the gateway refuses to start instead, and a
 * source that first appears later (a reloaded keys file) is refused at once.
 */
import { replyMatcher } from '../codec/envelope.js';
import { StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';

export function gatewayReplyStreams(
  keys: Keys,
  name: string,
  pattern = keys.defaultReplyPattern(),
): (source: string) => string {
  const allowed = replyMatcher(pattern);
  return (source) => {
    const stream = keys.gatewayReply(source, name);
    if (allowed(stream, source)) return stream;
    throw new StreambedError(
      'config',
      `REPLY_TO_PATTERN=${pattern} refuses the gateway's reply stream ${stream}: the workers ` +
        `would dead-letter every request as reply_to_denied. Give the gateway the workers' ` +
        `REPLY_TO_PATTERN, one that allows ${keys.gatewayReply('{source}', '*')} (the default does)`,
    );
  };
}
