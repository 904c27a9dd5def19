/**
 * `streambed serve`: the OpenAI-compatible front door to the fleet, as one
 * process: its Redis connections (commands, and one for the blocking read of
 * its reply stream), the reply router, the SDK client that queues envelopes,
 * and the HTTP server (API routes plus /metrics, /healthz, /readyz).
 *
 * Drain: `stop()` stops accepting connections, answers new requests on open
 * ones 503 (Connection: close), waits up to DRAIN_TIMEOUT_MS for the
 * requests in flight to be answered, then closes everything.
 */
import type http from 'node:http';

import { StreambedClient } from '../client/client.js';
import type { Config } from '../config/load.js';
import type { REDIS_SETTINGS } from '../config/settings.js';
import { boundPort, startHttp } from '../http/server.js';
import { keys as buildKeys } from '../keys.js';
import type { Logger } from '../log.js';
import { connectRedis, redisTarget } from '../redis/connect.js';
import { consumerName } from '../worker/consumer-name.js';
import { gatewayMetrics } from './gateway-metrics.js';
import { KeysFile } from './keys-file.js';
import { ModelCatalog } from './model-catalog.js';
import { RateLimiter } from './rate-limit.js';
import { ReplyRouter } from './reply-router.js';
import { gatewayReplyStreams } from './reply-streams.js';
import { gatewayRoutes } from './routes.js';
import { SubmitCoalescer } from './submit-coalescer.js';

export type GatewayConfig = Pick<
  Config,
  | (typeof REDIS_SETTINGS)[number]
  | 'keyPrefix'
  | 'group'
  | 'models'
  | 'consumerName'
  | 'maxEnvelopeBytes'
  | 'gatewayMaxInputs'
  | 'gatewayMaxRequestBytes'
  | 'gatewayLongInput'
  | 'drainTimeoutMs'
  | 'gatewayPort'
  | 'gatewayKeepAliveS'
  | 'gatewayTimeoutMs'
  | 'gatewayMaxBacklog'
  | 'gatewayKeysFile'
  | 'gatewaySource'
  | 'replyToPattern'
>;

export interface Gateway {
  readonly port: number;
  /** Its reply streams so far, one per source served. */
  readonly replyStreams: readonly string[];
  /** Drain and close; resolves true when every request in flight was answered in time. */
  stop(): Promise<boolean>;
}

export async function startGateway(config: GatewayConfig, log: Logger): Promise<Gateway> {
  const keyRing = config.gatewayKeysFile
    ? new KeysFile(config.gatewayKeysFile, log).follow()
    : undefined;
  if (keyRing) log.info({ keys: keyRing.size }, 'gateway API keys loaded');
  else
    log.warn(
      { source: config.gatewaySource },
      'GATEWAY_KEYS_FILE is not set: the gateway serves anyone who can reach it, as one source',
    );
  const name = consumerName(config.consumerName);
  const keys = buildKeys(config.keyPrefix, config.group);
  const streamOf = gatewayReplyStreams(keys, name, config.replyToPattern);
  const sources = [...(keyRing?.sources ?? []), ...(keyRing ? [] : [config.gatewaySource])];
  // Refused before anything connects: a fleet that would dead-letter every request.
  sources.forEach(streamOf);
  const connect = (role: string) =>
    connectRedis({
      ...redisTarget(config),
      name: `streambed-gateway-${role}-${name}`,
      log,
    });
  const redis = connect('cmd');
  const reader = connect('reply');
  const router = new ReplyRouter(redis, reader, streamOf, log);
  router.start(sources);
  const client = new StreambedClient({
    redis,
    prefix: config.keyPrefix,
    group: config.group,
    maxBacklog: config.gatewayMaxBacklog,
    onBacklog: 'fail',
  });
  const metrics = gatewayMetrics();
  metrics.setWaiting(() => router.waiting);
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const routes = gatewayRoutes({
    client: new SubmitCoalescer(client),
    router,
    catalog: new ModelCatalog(redis, keys, config.models),
    maxEnvelopeBytes: config.maxEnvelopeBytes,
    maxInputs: config.gatewayMaxInputs,
    maxRequestBytes: config.gatewayMaxRequestBytes,
    longInput: config.gatewayLongInput,
    timeoutMs: config.gatewayTimeoutMs,
    keys: keyRing,
    defaultSource: config.gatewaySource,
    limiter: new RateLimiter(redis, keys),
    metrics,
    log,
    draining: () => draining,
  });
  const health = {
    readiness: () => {
      const reasons = [
        ...(draining ? ['draining'] : []),
        ...(redis.status !== 'ready' ? [`redis ${redis.status}`] : []),
      ];
      return { ready: reasons.length === 0, reasons };
    },
  };
  const server: http.Server = await startHttp(
    config.gatewayPort,
    health,
    metrics.registry,
    (req, res) => {
      if (!routes(req, res)) return false;
      // Counted here, around the route, so drain knows what is still owed an answer.
      inFlight++;
      res.once('close', () => {
        if (--inFlight === 0) idle?.();
      });
      return true;
    },
    { keepAliveMs: config.gatewayKeepAliveS * 1000 },
  );
  const port = boundPort(server);
  log.info({ port, replyStreams: router.streams }, 'gateway listening');

  return {
    port,
    get replyStreams() {
      return router.streams;
    },
    async stop() {
      draining = true;
      server.close();
      server.closeIdleConnections();
      const drained =
        inFlight === 0 ||
        (await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), config.drainTimeoutMs);
          idle = () => {
            clearTimeout(timer);
            resolve(true);
          };
        }));
      server.closeAllConnections();
      keyRing?.stop();
      await router.stop();
      await client.close();
      // QUIT would wait in the offline queue while Redis is away.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
      reader.disconnect();
      return drained;
    },
  };
}
