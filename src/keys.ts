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
  /** Log of DLQ entries replayed from `dlq(model)` (what, when, the new request entry id). */
  dlqReplayed(model: string): string;
  /** SCAN pattern matching every DLQ stream (and replay log) under the prefix. */
  dlqPattern(): string;
  /** The model of a DLQ stream key, or undefined if the key is not one (e.g. a replay log). */
  dlqModel(key: string): string | undefined;
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
    dlqReplayed: (model) => `${prefix}:dlq:${model}:replayed`,
    dlqPattern: () => `${prefix}:dlq:*`,
    // Model names never contain ':' (models/table.ts), so `dlq:{model}:replayed` is not a DLQ.
    dlqModel: (key) => {
      const head = `${prefix}:dlq:`;
      const model = key.startsWith(head) ? key.slice(head.length) : '';
      return model && !model.includes(':') ? model : undefined;
    },
    progress: (source) => `${prefix}:progress:${source}`,
    defaultReplyPattern: () => `${prefix}:reply:*`,
    privateReply: (clientId) => `${prefix}:reply:${clientId}`,
  };
}
