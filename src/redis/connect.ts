/**
 * Redis connections: `redis://` or `rediss://` URLs with ACL user/password,
 * an optional CA file for TLS, and reconnection with capped, jittered backoff
 * so a fleet that loses Redis neither crash-loops nor stampedes it on return.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';

import { Redis, type RedisOptions } from 'ioredis';

import { redactUrl } from '../config/load.js';
import type { Logger } from '../log.js';

export interface ConnectOptions {
  url: string;
  tlsCaFile?: string;
  /** Connection name shown by CLIENT LIST. */
  name?: string;
  log?: Logger;
  /** Commands issued while disconnected wait for the reconnection instead of failing. */
  offlineQueue?: boolean;
}

export const BACKOFF_BASE_MS = 100;
export const BACKOFF_CAP_MS = 5_000;

/** Full-jitter exponential backoff (AWS architecture blog), capped. */
export function backoffMs(attempt: number, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS): number {
  return Math.round(Math.random() * Math.min(cap, base * 2 ** Math.min(attempt, 20)));
}

export function connectRedis(opts: ConnectOptions): Redis {
  const url = new URL(opts.url);
  const tls = url.protocol === 'rediss:';
  // URL keeps IPv6 literals bracketed ([::1]); TLS wants the bare address.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const options: RedisOptions = {
    ...(opts.name && { connectionName: opts.name }),
    lazyConnect: false,
    enableOfflineQueue: opts.offlineQueue ?? true,
    // Retry forever: the caller decides when to give up (readiness reflects the outage).
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => {
      const wait = backoffMs(attempt);
      opts.log?.warn(
        { attempt, waitMs: wait, redis: redactUrl(opts.url) },
        'redis unreachable, retrying',
      );
      return Math.max(wait, 50);
    },
    ...(tls && {
      tls: {
        ...(opts.tlsCaFile && { ca: fs.readFileSync(opts.tlsCaFile) }),
        // SNI takes host names only (RFC 6066): for an IP, Node checks the certificate
        // against the address itself and would warn (DEP0123) if given it as servername.
        ...(isIP(host) === 0 && { servername: host }),
      },
    }),
  };
  const redis = new Redis(opts.url, options);
  // ioredis emits 'error' on every failed attempt; retryStrategy already logged it.
  redis.on('error', (err: Error) =>
    opts.log?.debug({ err: err.message }, 'redis connection error'),
  );
  return redis;
}
