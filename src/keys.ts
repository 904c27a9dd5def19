/**
 * Every Redis key and group name streambed uses is built here and nowhere
 * else, so the layout in docs/design.md has exactly one implementation.
 */
/** What a source name may be (the envelope rule): no glob characters, no '/'. */
export const SOURCE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/** Where `{source}` stands in a reply pattern (REPLY_TO_PATTERN), the envelope's own source goes. */
export const SOURCE_PLACEHOLDER = '{source}';

export type Lane = 'interactive' | 'bulk';

export const DEFAULT_PREFIX = 'sb';
export const DEFAULT_GROUP = 'sb-workers';
/**
 * The bulk scheduler's member for the plain `{p}:req:{model}:bulk` stream
 * (producers that know nothing of per-source streams). Not a valid source
 * name (`[A-Za-z0-9._:-]`), so it never collides with one.
 */
export const PLAIN_BULK_MEMBER = '*';

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
  /**
   * The pattern reply streams must match by default: `sb:reply:{source}/*`,
   * each envelope answered only under its own source (docs/acl.md).
   */
  defaultReplyPattern(): string;
  /**
   * A reply stream of one source: `{p}:reply:{source}/{name}`. Matches the
   * source-bound default and the open pattern alike, so whatever streambed
   * itself names this way works under both.
   */
  sourceReply(source: string, name: string): string;
  /** Bulk lane, per source: `{p}:req:{model}:bulk:{source}` (the scheduler member `*` is the plain bulk stream). */
  bulkSource(model: string, source: string): string;
  /** The lane of a request stream key (`{p}:req:{model}` is interactive; any `:bulk` stream is bulk). */
  laneOf(key: string): Lane;
  /** `{model, source}` of a per-source bulk stream key, or undefined if the key is not one. */
  bulkSourceOf(key: string): { model: string; source: string } | undefined;
  /** ZSET: sources with bulk backlog, scored by virtual time (weighted fair queuing). */
  bulkSchedule(model: string): string;
  /** ZSET: virtual finish time of sources that ran dry, so rejoining does not bank idle time. */
  bulkIdle(model: string): string;
  /** STRING: the scheduler's virtual clock (virtual time of the last pick). */
  bulkClock(model: string): string;
  /** HASH: source -> weight (default 1). */
  bulkWeights(model: string): string;
  /** SET: every source that has a per-source bulk stream (the reclaimer and trimmer walk it). */
  bulkSources(model: string): string;
  /**
   * LIST: one element per per-source bulk entry not yet acknowledged (pushed in the
   * producer's MULTI, popped by the publish-and-ack script), so KEDA's `redis` scaler
   * sees every source's backlog with one LLEN.
   */
  bulkBacklog(model: string): string;
  /** Result stream of a `streambed backfill` job for the pages of one source. */
  backfillReply(source: string, job: string): string;
  /** The one result stream of a backfill job started by an earlier streambed (read until drained). */
  legacyBackfillReply(job: string): string;
  /** SET of `source/id` of the pages a backfill job has submitted (jobs of streambed <= 0.1; now only deleted). */
  backfillSubmitted(job: string): string;
  /** HASH: a backfill job's checkpoint (`submitted`, `last`, `read`, `total`, `reply`). */
  backfillJob(job: string): string;
  /** STRING bitmap: bit i set once the job's input page i is answered. */
  backfillAnswered(job: string): string;
  /** HASH: `source/id` -> error code and message of the job's dead-lettered pages. */
  backfillFailed(job: string): string;
  /** Fleet-wide dedupe cache: vector bytes of one text (hash covers the model reference and the text). */
  dedupe(model: string, hash: string): string;
  /** Counter of dedupe cache fills in one TTL window (the cache's size bound). */
  dedupeBudget(model: string, window: number): string;
  /** A `streambed serve` process's reply stream for one source it serves. */
  gatewayReply(source: string, name: string): string;
  /** Requests of one API key (by its hash prefix) in one minute: the gateway's per-key rate limit. */
  gatewayRate(keyId: string, minute: number): string;
  /** HASH: a remote model's fleet-wide rate-limit buckets (rate-limit-script.ts). */
  rateLimit(model: string): string;
  /** STRING with PX: set while a provider's Retry-After runs; every worker waits it out. */
  cooldown(model: string): string;
  /** STRING: tokens a remote model spent on one UTC day (`budgetTokensPerDay`). */
  tokenBudget(model: string, day: number): string;
  /** STRING with EX: why the provider last refused a remote model (401/403/404), for `status`. */
  providerRefused(model: string): string;
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
    defaultReplyPattern: () => `${prefix}:reply:{source}/*`,
    // '/' is not allowed in source names: source `a` never reaches `a:b`'s streams.
    sourceReply: (source, name) => `${prefix}:reply:${source}/${name}`,
    bulkSource: (model, source) =>
      source === PLAIN_BULK_MEMBER
        ? `${prefix}:req:${model}:bulk`
        : `${prefix}:req:${model}:bulk:${source}`,
    // Model names never contain ':' (models/table.ts): what follows the model names the lane.
    laneOf: (key) => {
      const rest = key.slice(`${prefix}:req:`.length);
      const lane = rest.slice(rest.indexOf(':') + 1);
      return rest.includes(':') && (lane === 'bulk' || lane.startsWith('bulk:'))
        ? 'bulk'
        : 'interactive';
    },
    // Model names never contain ':' (models/table.ts): the first ':bulk:' ends the model.
    bulkSourceOf: (key) => {
      const head = `${prefix}:req:`;
      if (!key.startsWith(head)) return undefined;
      const rest = key.slice(head.length);
      const at = rest.indexOf(':bulk:');
      if (at <= 0 || rest.slice(0, at).includes(':')) return undefined;
      const source = rest.slice(at + ':bulk:'.length);
      return source ? { model: rest.slice(0, at), source } : undefined;
    },
    bulkSchedule: (model) => `${prefix}:sched:${model}`,
    bulkIdle: (model) => `${prefix}:sched:${model}:idle`,
    bulkClock: (model) => `${prefix}:sched:${model}:clock`,
    bulkWeights: (model) => `${prefix}:weights:${model}`,
    bulkSources: (model) => `${prefix}:bulk-sources:${model}`,
    bulkBacklog: (model) => `${prefix}:bulk-backlog:${model}`,
    backfillReply: (source, job) => `${prefix}:reply:${source}/backfill:${job}`,
    legacyBackfillReply: (job) => `${prefix}:reply:backfill:${job}`,
    backfillSubmitted: (job) => `${prefix}:backfill:${job}:submitted`,
    backfillJob: (job) => `${prefix}:backfill:${job}`,
    backfillAnswered: (job) => `${prefix}:backfill:${job}:answered`,
    backfillFailed: (job) => `${prefix}:backfill:${job}:failed`,
    dedupe: (model, hash) => `${prefix}:cache:${model}:${hash}`,
    dedupeBudget: (model, window) => `${prefix}:cache-budget:${model}:${window}`,
    gatewayReply: (source, name) => `${prefix}:reply:${source}/gateway-${name}`,
    gatewayRate: (keyId, minute) => `${prefix}:gateway-rate:${keyId}:${minute}`,
    rateLimit: (model) => `${prefix}:ratelimit:${model}`,
    cooldown: (model) => `${prefix}:cooldown:${model}`,
    tokenBudget: (model, day) => `${prefix}:token-budget:${model}:${day}`,
    providerRefused: (model) => `${prefix}:provider-refused:${model}`,
  };
}
