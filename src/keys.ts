/**
 * Every Redis key and group name streambed uses is built here and nowhere
 * else, so the layout in docs/design.md has exactly one implementation.
 */
export type Lane = 'interactive' | 'bulk';

export const DEFAULT_PREFIX = 'sb';
export const DEFAULT_GROUP = 'sb-workers';

export interface Keys {
  readonly prefix: string;
  readonly group: string;
  request(model: string, lane?: Lane): string;
  results(): string;
  dlq(model: string): string;
  progress(source: string): string;
  /** The pattern reply streams must match by default (`sb:reply:*`). */
  defaultReplyPattern(): string;
  /** A private reply stream for one SDK client. */
  privateReply(clientId: string): string;
}

export function keys(prefix: string = DEFAULT_PREFIX, group: string = DEFAULT_GROUP): Keys {
  return {
    prefix,
    group,
    request: (model, lane = 'interactive') =>
      lane === 'bulk' ? `${prefix}:req:${model}:bulk` : `${prefix}:req:${model}`,
    results: () => `${prefix}:results`,
    dlq: (model) => `${prefix}:dlq:${model}`,
    progress: (source) => `${prefix}:progress:${source}`,
    defaultReplyPattern: () => `${prefix}:reply:*`,
    privateReply: (clientId) => `${prefix}:reply:${clientId}`,
  };
}
