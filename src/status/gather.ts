/**
 * One sample of the fleet's state for `streambed status`: discovers model
 * streams (SCAN, plus each model's registry of per-source bulk streams),
 * progress hashes and backfill jobs, then reads every stream, group,
 * consumer list, DLQ, progress hash and job in one pipelined round trip,
 * plus one for each busy consumer's oldest pending entry and the job
 * failure counts (jobs.ts).
 */
import type { ChainableCommander, Redis } from 'ioredis';

import { type Keys, type Lane, PLAIN_BULK_MEMBER } from '../keys.js';
import { MODEL_NAME } from '../models/table.js';
import { type EvictionRisk, evictionRisks } from '../redis/eviction.js';
import { discoverJobs, FailureTally, jobReplyStreams, type JobSample, queueJob } from './jobs.js';
import {
  type ConsumerRecord,
  type Parser,
  type PendingEntry,
  type ProgressRecord,
  type ProviderSample,
  queueConsumers,
  queueLength,
  queueMembers,
  queueOldestPending,
  queueProgress,
  queueProvider,
  queueServerTime,
  queueStreamRead,
  type StreamRead,
} from './redis-reads.js';
import { scanKeys } from './scan.js';

export const LANES: readonly Lane[] = ['interactive', 'bulk'];

export interface ConsumerSample extends ConsumerRecord {
  oldest: PendingEntry | null;
}

export interface StreamSample {
  lane: Lane;
  /** The source of a bulk stream (`*` = the plain bulk stream); null for the interactive one. */
  source: string | null;
  stream: string;
  read: StreamRead;
  consumers: ConsumerSample[];
  /** An entry idle at least the pending-age threshold (exact check), when one was asked for. */
  overIdle: PendingEntry | null;
}

export interface ModelSample {
  model: string;
  dlq: string;
  dlqLength: number;
  /** Remote models only (docs/providers.md): a running cooldown, tokens spent today; null otherwise. */
  provider: ProviderSample | null;
  /** The interactive stream, the plain bulk stream, then each per-source bulk stream by source. */
  streams: StreamSample[];
}

export interface Sample {
  /** Redis server time of the read, epoch ms. */
  atMs: number;
  models: ModelSample[];
  sources: Array<{ source: string; progress: ProgressRecord }>;
  jobs: JobSample[];
  /** Nodes that may delete the fleet's keys when full (../redis/eviction.ts); absent in an old sample. */
  evictionRisks?: EvictionRisk[];
}

export interface GatherOptions {
  keys: Keys;
  /** Models to read; undefined = every model with a request stream. */
  models?: readonly string[];
  /** Sources to read; undefined = every source with a progress hash. */
  sources?: readonly string[];
  /** Backfill jobs to read; undefined = every job with a submitted set. */
  jobs?: readonly string[];
  /** How many of the oldest pending entries to list per stream. */
  pendingSample: number;
  /** Find a pending entry idle at least this long (for --check), or skip. */
  minIdleMs?: number;
  /** Job failure counts carried between samples (each sample reads only new answers). */
  tally?: FailureTally;
}

export async function gatherSample(redis: Redis, o: GatherOptions): Promise<Sample> {
  const [models, sources, jobs] = await Promise.all([
    modelStreams(redis, o.keys, o.models),
    o.sources ? [...o.sources] : discoverSources(redis, o.keys),
    o.jobs ? [...o.jobs] : discoverJobs(redis, o.keys),
  ]);
  const jobStreams = await jobReplyStreams(redis, o.keys, jobs);
  const p = redis.pipeline();
  const time = queueServerTime(p);
  const plans = [...models].map(([model, bulkSources]) => ({
    model,
    dlq: queueLength(p, o.keys.dlq(model)),
    provider: queueProvider(p, {
      cooldown: o.keys.cooldown(model),
      budget: o.keys.tokenBudget(model, Math.floor(Date.now() / 86_400_000)),
      refused: o.keys.providerRefused(model),
    }),
    streams: [
      queueStream(p, o, 'interactive', null, o.keys.request(model)),
      ...[PLAIN_BULK_MEMBER, ...bulkSources].map((s) =>
        queueStream(p, o, 'bulk', s, o.keys.bulkSource(model, s)),
      ),
    ],
  }));
  const progress = sources.map((source) => ({
    source,
    read: queueProgress(p, o.keys.progress(source)),
  }));
  const jobReads = jobs.map((job, i) => queueJob(p, o.keys, job, jobStreams[i] ?? []));
  const replies = (await p.exec()) ?? [];

  const sample: Sample = {
    atMs: time(replies),
    models: plans.map((m) => ({
      model: m.model,
      dlq: o.keys.dlq(m.model),
      dlqLength: m.dlq(replies),
      provider: m.provider(replies),
      streams: m.streams.map((read) => read(replies)),
    })),
    sources: progress.map((s) => ({ source: s.source, progress: s.read(replies) })),
    jobs: [],
  };
  const tally = o.tally ?? new FailureTally();
  const [jobSamples, , risks] = await Promise.all([
    Promise.all(jobReads.map((read) => tally.complete(redis, read(replies)))),
    readOldestPerConsumer(redis, o.keys.group, sample),
    evictionRisks(redis),
  ]);
  sample.jobs = jobSamples;
  sample.evictionRisks = risks;
  return sample;
}

function queueStream(
  p: ChainableCommander,
  o: GatherOptions,
  lane: Lane,
  source: string | null,
  stream: string,
): Parser<StreamSample> {
  const read = queueStreamRead(p, stream, o.keys.group, o.pendingSample);
  const consumers = queueConsumers(p, stream, o.keys.group);
  const overIdle =
    o.minIdleMs === undefined
      ? undefined
      : queueOldestPending(p, stream, o.keys.group, { minIdleMs: o.minIdleMs });
  return (replies) => ({
    lane,
    source,
    stream,
    read: read(replies),
    consumers: consumers(replies).map((c) => ({ ...c, oldest: null })),
    overIdle: overIdle?.(replies) ?? null,
  });
}

/** Second round trip: the oldest pending entry of every consumer that has any. */
async function readOldestPerConsumer(redis: Redis, group: string, sample: Sample): Promise<void> {
  const busy = sample.models.flatMap((m) =>
    m.streams.flatMap((s) => s.consumers.filter((c) => c.pending > 0).map((c) => ({ s, c }))),
  );
  if (busy.length === 0) return;
  const p = redis.pipeline();
  const reads = busy.map(({ s, c }) => ({
    c,
    read: queueOldestPending(p, s.stream, group, { consumer: c.name }),
  }));
  const replies = (await p.exec()) ?? [];
  for (const { c, read } of reads) c.oldest = read(replies);
}

/**
 * Each model and its per-source bulk streams: those in the model's registry
 * (`sb:bulk-sources:{model}`) and, when discovering, any found by SCAN (an
 * XADD that skipped the SDK), so every stream is counted.
 */
async function modelStreams(
  redis: Redis,
  keys: Keys,
  only: readonly string[] | undefined,
): Promise<Map<string, string[]>> {
  const found = only
    ? new Map(only.map((m) => [m, [] as string[]]))
    : await scanStreams(redis, keys);
  const p = redis.pipeline();
  const registry = [...found.keys()].map((m) => ({
    m,
    read: queueMembers(p, keys.bulkSources(m)),
  }));
  const replies = (await p.exec()) ?? [];
  const out = new Map<string, string[]>();
  for (const { m, read } of registry) {
    const sources = new Set([...(found.get(m) ?? []), ...read(replies)]);
    sources.delete(PLAIN_BULK_MEMBER);
    out.set(m, [...sources].sort());
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

/** Model name -> per-source bulk streams found, from a SCAN of request streams. */
async function scanStreams(redis: Redis, keys: Keys): Promise<Map<string, string[]>> {
  const head = keys.request('');
  const bulkTail = keys.request('', 'bulk').slice(head.length);
  const out = new Map<string, string[]>();
  for (const key of await scanKeys(redis, keys.request('*'), 'stream')) {
    const perSource = keys.bulkSourceOf(key);
    const rest = key.slice(head.length);
    const model =
      perSource?.model ?? (rest.endsWith(bulkTail) ? rest.slice(0, -bulkTail.length) : rest);
    // Anything under the prefix that is not a valid model name is not ours.
    if (!MODEL_NAME.test(model)) continue;
    const list = out.get(model) ?? [];
    if (perSource) list.push(perSource.source);
    out.set(model, list);
  }
  return out;
}

/** Sources that have a progress hash, by SCAN. */
export async function discoverSources(redis: Redis, keys: Keys): Promise<string[]> {
  const head = keys.progress('');
  const found = await scanKeys(redis, keys.progress('*'), 'hash');
  return [...new Set(found.map((k) => k.slice(head.length)))].filter((s) => s !== '_').sort();
}
