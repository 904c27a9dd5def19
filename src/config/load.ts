/**
 * Layering: DEFAULTS (from SETTINGS) < environment < flags. Parsing is strict:
 * a malformed value is an error that names the setting.
 */
import os from 'node:os';

import { StreambedError } from '../errors.js';
import { SOURCE_PLACEHOLDER } from '../keys.js';
import { type Config, flagAttribute, type SettingKey, SETTINGS } from './settings.js';

export type { Config } from './settings.js';

export type Flags = Record<string, unknown>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: Flags = {}): Config {
  return loadSettings(env, flags, Object.keys(SETTINGS) as SettingKey[]) as Config;
}

/**
 * Only the settings a command uses, so a command is not broken by a malformed
 * setting it never reads (`THREADS=abc` in a worker's environment must not
 * stop `streambed status` run in the same shell).
 */
export function loadSettings<K extends SettingKey>(
  env: NodeJS.ProcessEnv,
  flags: Flags,
  only: readonly K[],
): Pick<Config, K> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const key of only) {
    const s = SETTINGS[key];
    const fromFlag = flags[flagAttribute(s.env)];
    const fromEnv = env[s.env];
    const raw = fromFlag ?? (fromEnv === '' ? undefined : fromEnv) ?? s.default;
    const parsed = s.schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else
      problems.push(
        `${s.env}=${JSON.stringify(redact(key, raw))}: ${parsed.error.issues[0]?.message}`,
      );
  }
  if (problems.length) {
    throw new StreambedError('config', `invalid configuration: ${problems.join('; ')}`);
  }
  if (out.redisCluster === true) clusterLayout(out);
  if (typeof out.keyPrefix === 'string' && out.keyPrefix.includes(SOURCE_PLACEHOLDER))
    // The default reply pattern would bind the prefix itself to each envelope's source.
    throw new StreambedError(
      'config',
      `invalid configuration: KEY_PREFIX=${JSON.stringify(out.keyPrefix)}: "${SOURCE_PLACEHOLDER}" is the reply pattern's placeholder for the source`,
    );
  return out as Pick<Config, K>;
}

/**
 * Redis Cluster: every key of the fleet under one hash tag, `{KEY_PREFIX}`,
 * so each script and MULTI (request stream, reply stream, progress, DLQ,
 * bulk schedule) touches one slot. A reply stream outside it could not be
 * written in the publish script: REPLY_TO_PATTERN must start with the tag.
 */
function clusterLayout(out: Record<string, unknown>): void {
  if (typeof out.keyPrefix === 'string' && !out.keyPrefix.startsWith('{'))
    out.keyPrefix = `{${out.keyPrefix}}`;
  const pattern = out.replyToPattern;
  if (typeof pattern === 'string' && typeof out.keyPrefix === 'string') {
    if (!pattern.startsWith(`${out.keyPrefix}:`))
      throw new StreambedError(
        'config',
        `invalid configuration: REPLY_TO_PATTERN=${JSON.stringify(pattern)}: with REDIS_CLUSTER it must begin with "${out.keyPrefix}:" (reply streams share the fleet's slot)`,
      );
  }
}

function redact(key: SettingKey, raw: unknown): unknown {
  if (key === 'redisSentinelPassword') return '***';
  return key === 'redisUrl' && typeof raw === 'string' ? redactUrl(raw) : raw;
}

/** Hide the password in a URL so it can be logged (userinfo and password-like query parameters). */
export function redactUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return raw.replace(/\/\/.*@/s, '//***@');
  }
  if (url.password) url.password = '***';
  for (const key of [...url.searchParams.keys()]) {
    if (/pass|secret|token/i.test(key)) url.searchParams.set(key, '***');
  }
  return url.toString();
}

/** Threads x intra-op threads never exceeds the cores unless asked to. */
export function resolveThreads(config: Pick<Config, 'threads' | 'intraOpThreads'>): number {
  if (config.threads !== undefined) return config.threads;
  const cores = os.availableParallelism();
  return Math.max(1, Math.floor(cores / config.intraOpThreads));
}

export function resolveInFlight(config: Pick<Config, 'inFlightBatches'>, threads: number): number {
  return config.inFlightBatches ?? threads * 2;
}

/**
 * Texts a worker keeps waiting ahead of the pool's free slots, so its packer
 * has a window to sort: on short texts one batch left 15% padding, two 6-10%
 * (BENCHMARKS.md, "Profile").
 */
export function lookaheadTexts(config: Pick<Config, 'batchSize'>): number {
  return 2 * config.batchSize;
}

/** Most entries one worker holds (delivered, not yet answered): the pool's batches plus the lookahead. */
export function maxHeldEntries(
  config: Pick<Config, 'inFlightBatches' | 'batchSize'>,
  threads: number,
): number {
  return resolveInFlight(config, threads) * config.batchSize + lookaheadTexts(config);
}
