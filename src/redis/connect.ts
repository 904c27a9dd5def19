/**
 * Redis connections: `redis://` or `rediss://` URLs with ACL user/password,
 * an optional CA file for TLS, Redis Sentinel (the URL then gives only the
 * credentials, database and TLS; the sentinels name the master), Redis
 * Cluster (the URL is a seed), and reconnection with capped, jittered backoff so a fleet that loses Redis
 * neither crash-loops nor stampedes it on return. Workers retry for ever (one
 * warning per outage); command-line clients retry a few times and then fail,
 * so a person is told within seconds.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';

import { Cluster, Redis, type RedisOptions } from 'ioredis';

import { type Config, redactUrl } from '../config/load.js';
import type { REDIS_SETTINGS } from '../config/settings.js';
import { StreambedError } from '../errors.js';
import type { Logger } from '../log.js';

/** Where Redis is and how to log in: REDIS_URL alone, or with sentinels (REDIS_SENTINELS). */
export interface RedisTarget {
  url: string;
  tlsCaFile?: string | undefined;
  /** `host:port,...`: ask these sentinels for the master `sentinelName` (REDIS_SENTINELS). */
  sentinels?: string | undefined;
  sentinelName?: string | undefined;
  sentinelPassword?: string | undefined;
  /** Redis Cluster: `url` is a seed node (REDIS_CLUSTER). */
  cluster?: boolean | undefined;
}

/** The target of a loaded configuration (every command that connects loads REDIS_SETTINGS). */
export function redisTarget(config: Pick<Config, (typeof REDIS_SETTINGS)[number]>): RedisTarget {
  return {
    url: config.redisUrl,
    tlsCaFile: config.redisTlsCaFile,
    sentinels: config.redisSentinels,
    sentinelName: config.redisSentinelName,
    sentinelPassword: config.redisSentinelPassword,
    cluster: config.redisCluster,
  };
}

/** How a person or a log line names the target, without its passwords. */
export function describeTarget(t: RedisTarget): string {
  if (t.cluster) return `cluster seeded from ${redactUrl(t.url)}`;
  if (!t.sentinels) return redactUrl(t.url);
  return `master ${t.sentinelName ?? 'mymaster'} of sentinels ${t.sentinels}`;
}

export interface ConnectOptions extends RedisTarget {
  /** Connection name shown by CLIENT LIST. */
  name?: string;
  log?: Logger;
  /** Commands issued while disconnected wait for the reconnection instead of failing. */
  offlineQueue?: boolean;
  /** Log a warning when an outage starts (default true); off for a process's second connection. */
  reportOutage?: boolean;
  /** Reconnection attempts before giving up (commands then fail); default: for ever. */
  maxReconnects?: number;
}

export const BACKOFF_BASE_MS = 100;
export const BACKOFF_CAP_MS = 5_000;
/** A command-line client: reconnects for a few seconds of a blip, then its commands fail. */
export const CLIENT_RECONNECTS = 8;
export const CLIENT_CONNECT_TIMEOUT_MS = 5_000;

/** Full-jitter exponential backoff (AWS architecture blog), capped. */
export function backoffMs(attempt: number, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS): number {
  return Math.round(Math.random() * Math.min(cap, base * 2 ** Math.min(attempt, 20)));
}

export function connectRedis(opts: ConnectOptions): Redis {
  const url = new URL(opts.url);
  const tls = url.protocol === 'rediss:';
  // URL keeps IPv6 literals bracketed ([::1]); TLS wants the bare address.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const limit = opts.maxReconnects ?? Infinity;
  let lastError = '';
  let down = false;
  const tlsOptions = {
    ...(opts.tlsCaFile && { ca: fs.readFileSync(opts.tlsCaFile) }),
    // SNI takes host names only (RFC 6066): for an IP, Node checks the certificate
    // against the address itself and would warn (DEP0123) if given it as servername.
    // Behind sentinels or in a cluster the hosts are whatever the nodes announce: none.
    ...(isIP(host) === 0 && !opts.sentinels && !opts.cluster && { servername: host }),
  };
  const options: RedisOptions = {
    ...(opts.name && { connectionName: opts.name }),
    lazyConnect: false,
    enableOfflineQueue: opts.offlineQueue ?? true,
    // Workers retry for ever: the caller decides when to give up (readiness reflects the outage).
    maxRetriesPerRequest: Number.isFinite(limit) ? limit : null,
    ...(Number.isFinite(limit) && { connectTimeout: CLIENT_CONNECT_TIMEOUT_MS }),
    retryStrategy: (attempt) => {
      if (attempt > limit) return null;
      const wait = backoffMs(attempt);
      // One warning when an outage starts; the attempts after it are detail.
      const level = !down && opts.reportOutage !== false ? 'warn' : 'debug';
      down = true;
      opts.log?.[level](
        { attempt, waitMs: wait, redis: describeTarget(opts), err: lastError },
        'redis unreachable, retrying',
      );
      return Math.max(wait, 50);
    },
    ...(tls && { tls: tlsOptions }),
  };
  const redis = opts.cluster
    ? clusterClient(opts, url, options)
    : opts.sentinels
      ? new Redis({ ...options, ...sentinelOptions(opts, url, tls && tlsOptions) })
      : new Redis(opts.url, options);
  // ioredis emits 'error' on every failed attempt (and prints it when nobody
  // listens); retryStrategy reports the outage, commands report their own failure.
  redis.on('error', (err: Error) => {
    lastError = errorText(err);
    opts.log?.debug({ err: lastError }, 'redis connection error');
  });
  redis.on('ready', () => {
    if (down && opts.reportOutage !== false)
      opts.log?.info({ redis: describeTarget(opts) }, 'redis reachable again');
    down = false;
  });
  return redis;
}

/**
 * A connection for a command-line client, checked with one PING: an
 * unreachable Redis fails within seconds (code redis_unavailable, the URL
 * without its password), refused credentials are a configuration error.
 */
export async function connectClient(
  opts: Omit<ConnectOptions, 'maxReconnects'>,
  timeoutMs = CLIENT_CONNECT_TIMEOUT_MS,
): Promise<Redis> {
  const redis = connectRedis({ ...opts, maxReconnects: CLIENT_RECONNECTS });
  let lastError = '';
  const onError = (err: Error) => (lastError = errorText(err));
  redis.on('error', onError);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      }),
    ]);
    return redis;
  } catch (err) {
    redis.disconnect();
    throw redisFailure(opts, lastError || errorText(err as Error), timeoutMs);
  } finally {
    clearTimeout(timer);
    redis.off('error', onError);
  }
}

/**
 * Sentinel mode: the master comes from the sentinels, and the URL gives what
 * the master and replicas need (user, password, database, TLS). Writes to a
 * master demoted to a replica fail READONLY: reconnect, asking the sentinels
 * again, and resend the command (ioredis: reconnectOnError 2).
 */
function sentinelOptions(
  t: RedisTarget,
  url: URL,
  tlsOptions: RedisOptions['tls'] | false,
): RedisOptions {
  return {
    sentinels: (t.sentinels ?? '').split(',').map((hp) => {
      const at = hp.lastIndexOf(':');
      return { host: hp.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hp.slice(at + 1)) };
    }),
    name: t.sentinelName ?? 'mymaster',
    ...(url.username && { username: decodeURIComponent(url.username) }),
    ...(url.password && { password: decodeURIComponent(url.password) }),
    db: Number(url.pathname.slice(1) || 0),
    ...(t.sentinelPassword && { sentinelPassword: t.sentinelPassword }),
    ...(tlsOptions && { enableTLSForSentinelMode: true, sentinelTLS: tlsOptions }),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/**
 * Cluster mode: a Cluster seeded from the URL, typed as a Redis because the
 * code only uses what both have (commands, pipelines and MULTI on one slot,
 * scripts, events); what differs (SCAN per node) goes through `eachNode`.
 * Every key is under one hash tag (config/load.ts), so each command, script
 * and transaction has one slot and one node.
 */
function clusterClient(opts: ConnectOptions, url: URL, options: RedisOptions): Redis {
  const { retryStrategy, maxRetriesPerRequest, enableOfflineQueue, ...node } = options;
  const cluster = new Cluster(
    [{ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) }],
    {
      clusterRetryStrategy: retryStrategy,
      enableOfflineQueue,
      redisOptions: {
        ...node,
        ...(url.username && { username: decodeURIComponent(url.username) }),
        ...(url.password && { password: decodeURIComponent(url.password) }),
        maxRetriesPerRequest,
      },
    },
  );
  opts.log?.debug({ redis: describeTarget(opts) }, 'redis cluster mode');
  return cluster as unknown as Redis;
}

/** The connections a key scan must visit: every master of a Cluster, else the one server. */
export function eachNode(redis: Redis): Redis[] {
  return redis instanceof Cluster ? (redis as Cluster).nodes('master') : [redis];
}

/** `ECONNREFUSED` rather than ioredis's `connect ECONNREFUSED 127.0.0.1:1`, when it has a code. */
function errorText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : err.message;
}

const AUTH_ERROR = /^(WRONGPASS|NOAUTH|NOPERM)/;

/** The one-line error a person sees for a Redis that cannot be used. */
export function redisFailure(
  target: RedisTarget | string,
  why: string,
  timeoutMs: number,
): StreambedError {
  const where = describeTarget(typeof target === 'string' ? { url: target } : target);
  if (AUTH_ERROR.test(why)) {
    return new StreambedError(
      'config',
      `Redis at ${where} refused the credentials (${why.split('.')[0]}): fix the user and password in REDIS_URL`,
    );
  }
  return new StreambedError(
    'redis_unavailable',
    `Redis at ${where} is not reachable (${why}, gave up after ${timeoutMs / 1000} s): ` +
      `check REDIS_URL and that Redis is running`,
  );
}
