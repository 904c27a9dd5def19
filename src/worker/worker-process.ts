/**
 * One worker process: connects to Redis, loads the model table into its
 * backends (threads, remote providers: backends/registry.ts), creates the
 * groups, then runs the read loop, the reclaimer and the trimmer until stopped. `stop()` is the graceful drain of guarantee 5.
 */
import type { Redis } from 'ioredis';

import { envelopeDecoder } from '../codec/envelope.js';
import { type Config, lookaheadTexts, maxHeldEntries, resolveInFlight } from '../config/load.js';
import { StreambedError } from '../errors.js';
import { type Keys, keys as buildKeys } from '../keys.js';
import { createLogger, type Logger, quietInfo } from '../log.js';
import { modelRef, parseModelTable } from '../models/table.js';
import { backoffMs, connectRedis, redisTarget } from '../redis/connect.js';
import { evictionMessage, evictionRisks } from '../redis/eviction.js';
import { createSink, type Sink } from '../sink/index.js';
import type { ProviderState } from './backends/openai-http.js';
import { createBackend } from './backends/registry.js';
import { bulkStreams, healSchedule } from './bulk-scheduler.js';
import { ConsumeLoop } from './consume-loop.js';
import { consumerName } from './consumer-name.js';
import { DedupeCache } from './dedupe-cache.js';
import { WorkerEvents } from './events.js';
import { InFlight } from './in-flight.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { LoadedModel } from './pool.js';
import { Reclaimer } from './reclaimer.js';
import { ResultWriter } from './result-writer.js';
import { SinkStage } from './sink-stage.js';
import { ensureGroups } from './streams.js';
import { Trimmer } from './trimmer.js';

/** How long a forced stop waits for Redis to take its hand-back. */
const HAND_BACK_TIMEOUT_MS = 2_000;

export interface WorkerHandle {
  consumer: string;
  keys: Keys;
  events: WorkerEvents;
  log: Logger;
  models: ReadonlyMap<string, LoadedModel>;
  /** Resolves when the loop is reading (the first model is loaded); others join as they load. */
  started: Promise<void>;
  readiness(): { ready: boolean; reasons: string[] };
  stats(): {
    held: number;
    batchesInFlight: number;
    poolUtilization: number;
    poolQueue: number;
    threads: number;
  };
  /** Per remote model: cooldown, budget left, why refused (metrics, status). */
  providers(): Promise<ProviderState[]>;
  /** Graceful drain: stop reading, finish in-flight work within the drain timeout. Resolves true if drained cleanly. */
  stop(): Promise<boolean>;
  /** End a drain at once (second signal, fatal error): what is held is handed back for others. */
  forceStop(): Promise<boolean>;
  /** Reclaim sweep now (tests, operators). */
  reclaimNow(): Promise<number>;
  redis: Redis;
  /** The vector sink, when one is configured (search, tests). */
  sinkClient: Sink | undefined;
}

export function startWorker(config: Config, opts: { log?: Logger } = {}): WorkerHandle {
  const specs = parseModelTable(config.models);
  if (specs.length === 0)
    throw new StreambedError(
      'config',
      'MODELS is empty: name at least one model, e.g. MODELS=tiny=./models/tiny',
    );
  const consumer = consumerName(config.consumerName);
  const keys = buildKeys(config.keyPrefix, config.group);
  const log = (opts.log ?? createLogger(config.logLevel, {}, config.logFormat)).child({
    consumer,
    group: keys.group,
  });
  const events = new WorkerEvents();

  const redis = connectRedis({
    ...redisTarget(config),
    name: `${consumer}:cmd`,
    log,
  });
  const reader = connectRedis({
    ...redisTarget(config),
    name: `${consumer}:read`,
    log,
    // The command connection reports an outage; one warning line is enough.
    reportOutage: false,
  });
  // One backend per kind of model ref (backends/registry.ts); threads only if a model needs them.
  const backend = createBackend({ config, redis, keys, events, log }, specs);
  // Batches at once: the pool's threads plus the remote models' requests in flight.
  const threads = backend.threads;
  const maxBatches = resolveInFlight(config, threads);
  // A remote model's batch is its provider's maxInputs; the read window is sized for the largest.
  const batchSize = Math.max(config.batchSize, ...specs.map((s) => s.remote?.maxInputs ?? 0));
  const sized = { ...config, batchSize };
  const lookahead = lookaheadTexts(sized);
  const maxHeld = maxHeldEntries(sized, threads);
  const models = new Map<string, LoadedModel>();
  const streams = specs.flatMap((s) => [keys.request(s.name), keys.request(s.name, 'bulk')]);
  const modelOf = new Map(
    specs.flatMap(
      (s) =>
        [
          [keys.request(s.name), s.name],
          [keys.request(s.name, 'bulk'), s.name],
        ] as const,
    ),
  );
  const writer = new ResultWriter(redis, {
    keys,
    consumer,
    resultsMaxLen: config.resultsMaxLen,
    log,
  });
  const sinkClient = createSink(config, log);
  const sink =
    sinkClient && new SinkStage(sinkClient, log, { storePassages: config.sinkStorePassages });
  // With a sink, its own dedupe applies (and deduped answers are not upserted): no cache then.
  const dedupe =
    !sink && config.dedupeTtlS > 0 && config.dedupeMaxEntries > 0
      ? new DedupeCache(redis, {
          keys,
          ttlS: config.dedupeTtlS,
          maxEntries: config.dedupeMaxEntries,
          refOf: (name) => {
            const spec = models.get(name)?.spec;
            return spec ? modelRef(spec) : name;
          },
          log,
        })
      : undefined;
  const inFlight = new InFlight({
    pool: backend,
    models,
    writer,
    decode: envelopeDecoder({
      maxEnvelopeBytes: config.maxEnvelopeBytes,
      maxMetaBytes: config.maxMetaBytes,
      maxChunks: config.maxChunks,
      replyToPattern: config.replyToPattern ?? keys.defaultReplyPattern(),
    }),
    events,
    log,
    consumer,
    limits: { batchSize: config.batchSize, maxBatchTokens: config.maxBatchTokens },
    // (remote models pack by their own limits: LoadedModel.limits)
    maxBatches,
    lookahead,
    laneOf: (stream) => keys.laneOf(stream),
    maxHeld,
    batchTimeoutMs: config.batchTimeoutMs,
    maxChunks: config.maxChunks,
    ...(sink && { sink }),
    ...(dedupe && { dedupe }),
  });
  // Leases: while we hold an entry, its idle time is reset, so only our death lets it be reclaimed.
  const leases = new LeaseKeeper(
    redis,
    inFlight.ledger,
    { group: keys.group, consumer, claimIdleMs: config.claimIdleMs },
    log,
  );
  // Only streams whose model is loaded are read or reclaimed: a model that fails to
  // load leaves its entries in the stream (transient), never dead-letters them.
  const readable = () => streams.filter((s) => models.has(modelOf.get(s) ?? ''));
  const loaded = () => specs.map((s) => s.name).filter((name) => models.has(name));
  // Every request stream of the loaded models, per-source bulk streams included (O(sources)).
  const allStreams = async (names: readonly string[]) => [
    ...names.map((name) => keys.request(name)),
    ...(await Promise.all(names.map((name) => bulkStreams(redis, keys, name)))).flat(),
  ];
  const common = {
    group: keys.group,
    consumer,
    modelOf: (s: string) => modelOf.get(s) ?? keys.bulkSourceOf(s)?.model ?? '',
    maxHeld,
  };
  const loop = new ConsumeLoop(
    reader,
    inFlight,
    {
      ...common,
      streams: () => loaded().map((name) => keys.request(name)),
      readCount: config.readCount,
      blockMs: config.blockMs,
      batchSize,
      maxBatchTokens: config.maxBatchTokens,
      bulk: {
        redis,
        keys,
        models: loaded,
        // Bulk batches wait in the dispatch queue until a thread is idle, so holding two
        // beyond one per thread keeps threads fed between bulk reads without delaying
        // interactive entries.
        batches: config.bulkInFlightBatches ?? threads + 2,
        minShare: config.bulkMinShare,
        idlePollMs: Math.min(config.blockMs, 200),
      },
    },
    events,
    log,
  );
  const reclaimer = new Reclaimer(
    redis,
    inFlight,
    {
      ...common,
      streams: () => allStreams(loaded()),
      heal: async () =>
        (await Promise.all(loaded().map((name) => healSchedule(redis, keys, name)))).flat().length,
      claimIdleMs: config.claimIdleMs,
      intervalMs: config.claimIntervalMs,
      maxDeliveries: config.maxDeliveries,
    },
    events,
    log,
  );

  // Safe trimming of acknowledged history (guarantee 6); harmless in every pod.
  const trimmer = new Trimmer(
    redis,
    { streams: () => allStreams(specs.map((s) => s.name)), intervalMs: config.trimIntervalMs },
    // A line per stream per minute is housekeeping, not news: debug.
    quietInfo(log, { component: 'trimmer' }),
  );

  let stopping = false;
  let redisUp = false;
  const loadErrors = new Map<string, string>();
  redis.on('ready', () => (redisUp = true));
  redis.on('close', () => (redisUp = false));
  events.on('redis', ({ up }) => (redisUp = up));

  let fatalError: Error | undefined;
  let groupError: string | undefined;
  let rejectStarted: (err: Error) => void = () => undefined;
  const fatalStart = new Promise<never>((_, reject) => (rejectStarted = reject));
  fatalStart.catch(() => undefined);
  function fatal(err: Error): void {
    fatalError = err;
    log.fatal({ err: err.message }, 'cannot start');
    rejectStarted(err);
    events.emit('fatal', { message: err.message });
  }

  const started = (async () => {
    log.info(
      { models: specs.map((s) => s.name), threads, intraOpThreads: config.intraOpThreads, maxHeld },
      'worker starting',
    );
    const groups = createGroups();
    const loads = specs.map((spec) => loadModel(spec));
    // Read as soon as the groups exist and the first model is in; the rest join when loaded.
    await Promise.race([groups, fatalStart]);
    // Said at start, once Redis answers (a Cluster knows its nodes): an eviction leaves no trace.
    evictionRisks(redis).then(
      (risks) => risks.forEach((r) => log.warn({ risk: evictionMessage(r) }, 'Redis may evict')),
      () => undefined,
    );
    await Promise.race([Promise.race(loads), fatalStart]);
    if (stopping) return;
    leases.start();
    loop.start();
    reclaimer.start();
    trimmer.start();
    log.info({ streams: readable() }, 'worker reading');
  })();

  /**
   * The groups must exist before the first read. Redis refusing (at
   * maxmemory, loading, unreachable) is waited out, not fatal: a worker that
   * exits here would crash-loop under Kubernetes while Redis recovers.
   */
  async function createGroups(): Promise<void> {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        await ensureGroups(redis, streams, keys.group);
        groupError = undefined;
        redisUp = true;
        return;
      } catch (err) {
        // Refused credentials or rights do not heal by waiting: a configuration error.
        if (/^(WRONGPASS|NOAUTH|NOPERM)/.test((err as Error).message)) throw err;
        if (groupError === undefined)
          log.warn({ err: (err as Error).message }, 'cannot create consumer groups yet; retrying');
        groupError = (err as Error).message;
        await new Promise((r) => setTimeout(r, backoffMs(attempt, 250, 5_000)));
      }
    }
  }

  /** A model that fails to load keeps the process not ready and retries with backoff. */
  async function loadModel(spec: (typeof specs)[number]): Promise<void> {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        const m = await backend.load(spec);
        // The sink table's dimension comes from the loaded model (guarantee 7).
        await sinkClient?.ensureTable({ model: spec.name, modelRef: modelRef(spec), dim: m.dim });
        models.set(spec.name, m);
        loadErrors.delete(spec.name);
        log.info(
          { model: spec.name, dim: m.dim, maxTokens: m.maxTokens, loadMs: Math.round(m.loadMs) },
          'model loaded',
        );
        return;
      } catch (err) {
        if ((err as { code?: string }).code === 'config') {
          // A sink table of another dimension or model: fail loudly, never write into it.
          fatal(err as Error);
          return;
        }
        loadErrors.set(spec.name, (err as Error).message);
        log.error(
          { model: spec.name, err: (err as Error).message, attempt },
          'model failed to load, retrying',
        );
        await new Promise((r) => setTimeout(r, backoffMs(attempt, 1_000, 30_000)));
      }
    }
  }

  let forced: () => void = () => undefined;
  let stopped: Promise<boolean> | undefined;

  function stop(): Promise<boolean> {
    stopped ??= drainAndStop();
    return stopped;
  }

  /** Second signal or fatal error: end the drain now, hand back what is held. */
  function forceStop(): Promise<boolean> {
    forced();
    return stop();
  }

  async function drainAndStop(): Promise<boolean> {
    stopping = true;
    log.info({ held: inFlight.size, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    let timer: NodeJS.Timeout | undefined;
    // Everything, including stopping the timers and the read, fits in the drain
    // timeout: with Redis down their last commands would otherwise wait forever.
    const clean = await Promise.race([
      (async () => {
        await reclaimer.stop();
        await trimmer.stop();
        await loop.stop();
        await inFlight.drained();
        return true;
      })(),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), config.drainTimeoutMs))),
      new Promise<boolean>((r) => (forced = () => r(false))),
    ]);
    clearTimeout(timer);
    // With Redis down a renewal in progress would wait as long as Redis does: not on the way out.
    const leasesStopped = leases.stop();
    if (clean) await leasesStopped;
    else await giveBack();
    return close(clean);
  }

  /**
   * Hand-back: whatever is still held is made reclaimable at once (with its
   * delivery count kept), so survivors answer it within a reclaim sweep, not
   * after CLAIM_IDLE_MS. Unwritten answers are given up first; the fence in
   * the publish script keeps anything from being answered twice.
   */
  async function giveBack(): Promise<void> {
    const held = inFlight.size;
    inFlight.abandon();
    const handed = await Promise.race([
      leases.handBackAll(),
      new Promise<number>((r) => setTimeout(() => r(0), HAND_BACK_TIMEOUT_MS).unref()),
    ]);
    log.warn({ held, handedBack: handed }, 'stopping with entries held; handed back for others');
    // Fails whatever waits in the offline queue (Redis down), so nothing hangs.
    reader.disconnect();
    redis.disconnect();
  }

  async function close(clean: boolean): Promise<boolean> {
    await backend.close();
    await sinkClient
      ?.close()
      .catch((err: Error) => log.warn({ err: err.message }, 'sink close failed'));
    reader.disconnect();
    // QUIT waits behind queued commands; give it a second, then drop the connection.
    await Promise.race([
      redis.quit().catch(() => undefined),
      new Promise((r) => setTimeout(r, 1_000).unref()),
    ]);
    redis.disconnect();
    log.info({ clean }, 'stopped');
    return clean;
  }

  return {
    consumer,
    keys,
    events,
    log,
    models,
    started,
    redis,
    readiness() {
      const reasons: string[] = [];
      if (stopping) reasons.push('draining');
      if (fatalError) reasons.push(`cannot start: ${fatalError.message}`);
      if (!redisUp) reasons.push('redis unreachable');
      if (groupError) reasons.push(`cannot create consumer groups: ${groupError}`);
      const refused = writer.refusedBy();
      if (refused) reasons.push(`redis refuses result writes: ${refused}`);
      if (sink && !sink.healthy()) reasons.push('sink unavailable');
      reasons.push(...backend.reasons());
      for (const s of specs) {
        if (models.has(s.name)) continue;
        const err = loadErrors.get(s.name);
        reasons.push(err ? `model ${s.name} failed to load: ${err}` : `model ${s.name} loading`);
      }
      return { ready: reasons.length === 0, reasons };
    },
    stats: () => ({
      held: inFlight.size,
      batchesInFlight: inFlight.batchesInFlight,
      poolUtilization: backend.utilization,
      poolQueue: backend.queueSize,
      threads,
    }),
    providers: () => backend.providerStates(),
    stop,
    forceStop,
    sinkClient,
    reclaimNow: () => reclaimer.sweep(),
  };
}
