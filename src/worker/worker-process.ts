/**
 * One worker process: connects to Redis, loads the model table into the
 * thread pool, creates the groups, then runs the read loop and the reclaimer
 * until stopped. `stop()` is the graceful drain of guarantee 5.
 */
import type { Redis } from 'ioredis';

import { envelopeDecoder } from '../codec/envelope.js';
import { type Config, resolveInFlight, resolveThreads } from '../config/load.js';
import { StreambedError } from '../errors.js';
import { type Keys, keys as buildKeys } from '../keys.js';
import { createLogger, type Logger } from '../log.js';
import { parseModelTable } from '../models/table.js';
import { backoffMs, connectRedis } from '../redis/connect.js';
import { ConsumeLoop } from './consume-loop.js';
import { consumerName } from './consumer-name.js';
import { WorkerEvents } from './events.js';
import { InFlight } from './in-flight.js';
import { EmbedPool, type LoadedModel } from './pool.js';
import { Reclaimer } from './reclaimer.js';
import { ResultWriter } from './result-writer.js';
import { ensureGroups } from './streams.js';

export interface WorkerHandle {
  consumer: string;
  keys: Keys;
  events: WorkerEvents;
  log: Logger;
  models: ReadonlyMap<string, LoadedModel>;
  /** Resolves when models are loaded and the loop is reading. */
  started: Promise<void>;
  readiness(): { ready: boolean; reasons: string[] };
  stats(): {
    held: number;
    batchesInFlight: number;
    poolUtilization: number;
    poolQueue: number;
    threads: number;
  };
  /** Graceful drain: stop reading, finish in-flight work within the drain timeout. Resolves true if drained cleanly. */
  stop(): Promise<boolean>;
  /** Reclaim sweep now (tests, operators). */
  reclaimNow(): Promise<number>;
  redis: Redis;
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
  const log = (opts.log ?? createLogger(config.logLevel)).child({ consumer, group: keys.group });
  const events = new WorkerEvents();
  const threads = resolveThreads(config);
  const maxHeld = resolveInFlight(config, threads) * config.batchSize;

  const redis = connectRedis({
    url: config.redisUrl,
    tlsCaFile: config.redisTlsCaFile,
    name: `${consumer}:cmd`,
    log,
  });
  const reader = connectRedis({
    url: config.redisUrl,
    tlsCaFile: config.redisTlsCaFile,
    name: `${consumer}:read`,
    log,
  });
  const pool = new EmbedPool({
    threads,
    intraOpThreads: config.intraOpThreads,
    allowRemoteModels: config.allowRemoteModels,
    ...(config.modelCacheDir && { modelCacheDir: config.modelCacheDir }),
  });
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
  const writer = new ResultWriter(redis, { keys, consumer, resultsMaxLen: config.resultsMaxLen });
  const inFlight = new InFlight({
    pool,
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
  });
  const common = {
    group: keys.group,
    consumer,
    streams,
    modelOf: (s: string) => modelOf.get(s) ?? '',
    maxHeld,
  };
  const loop = new ConsumeLoop(
    reader,
    inFlight,
    { ...common, readCount: config.readCount, blockMs: config.blockMs },
    events,
    log,
  );
  const reclaimer = new Reclaimer(
    redis,
    inFlight,
    {
      ...common,
      claimIdleMs: config.claimIdleMs,
      intervalMs: config.claimIntervalMs,
      maxDeliveries: config.maxDeliveries,
    },
    events,
    log,
  );

  let stopping = false;
  let redisUp = false;
  let loadError: string | undefined;
  redis.on('ready', () => (redisUp = true));
  redis.on('close', () => (redisUp = false));
  events.on('redis', ({ up }) => (redisUp = up));

  const started = (async () => {
    log.info(
      { models: specs.map((s) => s.name), threads, intraOpThreads: config.intraOpThreads, maxHeld },
      'worker starting',
    );
    await loadModels();
    if (stopping) return;
    await ensureGroups(redis, streams, keys.group);
    redisUp = true;
    loop.start();
    reclaimer.start();
    log.info({ streams }, 'worker reading');
  })();

  /** A model that fails to load keeps the process not ready and retries; its entries stay pending. */
  async function loadModels(): Promise<void> {
    for (const spec of specs) {
      for (let attempt = 0; !stopping; attempt++) {
        try {
          const m = await pool.load(spec);
          models.set(spec.name, m);
          log.info(
            { model: spec.name, dim: m.dim, maxTokens: m.maxTokens, loadMs: Math.round(m.loadMs) },
            'model loaded',
          );
          loadError = undefined;
          break;
        } catch (err) {
          loadError = (err as Error).message;
          log.error(
            { model: spec.name, err: loadError, attempt },
            'model failed to load, retrying',
          );
          await new Promise((r) => setTimeout(r, backoffMs(attempt, 1_000, 30_000)));
        }
      }
    }
  }

  async function stop(): Promise<boolean> {
    stopping = true;
    log.info({ held: inFlight.size, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    await reclaimer.stop();
    await loop.stop();
    await started.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const clean = await Promise.race([
      inFlight.drained().then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), config.drainTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (!clean) {
      log.warn(
        { held: inFlight.size },
        'drain timed out; the rest stays pending for other consumers',
      );
      inFlight.abandon();
    }
    await pool.close();
    reader.disconnect();
    await redis.quit().catch(() => redis.disconnect());
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
      if (!redisUp) reasons.push('redis unreachable');
      if (models.size < specs.length)
        reasons.push(loadError ? `model load failed: ${loadError}` : 'models loading');
      return { ready: reasons.length === 0, reasons };
    },
    stats: () => ({
      held: inFlight.size,
      batchesInFlight: inFlight.batchesInFlight,
      poolUtilization: pool.utilization,
      poolQueue: pool.queueSize,
      threads,
    }),
    stop,
    reclaimNow: () => reclaimer.sweep(),
  };
}
