/**
 * What KEDA computes for a rendered ScaledObject trigger, against a real
 * Redis, the way its scalers do (kedacore/keda pkg/scalers/redis_streams_scaler.go
 * and redis_scaler.go): no cluster here, so the tests evaluate the chart's
 * triggers themselves.
 *
 * - redis-streams with consumerGroup + lagCount: the group's lag from XINFO
 *   GROUPS; 0 when the stream does not exist; XLEN when the group does not.
 * - redis-streams with consumerGroup only: XPENDING's summary count.
 * - redis-streams without consumerGroup: XLEN.
 * - redis (lists): ZCARD / SCARD / HLEN / LLEN by the key's type.
 * A trigger is active when its value is above activationLagCount
 * (activationListLength for lists), default 0; an error makes it inactive.
 */
import type { Redis } from 'ioredis';

import { helmTemplate, valuesFile } from './helm.js';

export interface Trigger {
  type: string;
  metadata: Record<string, string>;
}

export interface Reading {
  trigger: Trigger;
  /** The trigger's key: its stream or list. */
  key: string;
  value: number;
  active: boolean;
  error?: string;
}

const LIST_LENGTH_LUA = `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'zset' then return redis.call('ZCARD', KEYS[1]) end
if t == 'set' then return redis.call('SCARD', KEYS[1]) end
if t == 'hash' then return redis.call('HLEN', KEYS[1]) end
if t == 'list' or t == 'none' then return redis.call('LLEN', KEYS[1]) end
return redis.error_reply('ERR unsupported key type: ' .. t)
`;

async function value(redis: Redis, t: Trigger): Promise<number> {
  const m = t.metadata;
  // Plain, Sentinel and Cluster kinds read the same keys: they differ only in how they connect.
  if (/^redis(-sentinel|-cluster)?$/.test(t.type)) {
    return Number(await redis.eval(LIST_LENGTH_LUA, 1, m.listName as string));
  }
  if (!/^redis(-sentinel|-cluster)?-streams$/.test(t.type))
    throw new Error(`not a Redis trigger: ${t.type}`);
  const stream = m.stream as string;
  if (!m.consumerGroup) return redis.xlen(stream);
  if (m.lagCount === undefined) {
    const [count] = (await redis.xpending(stream, m.consumerGroup)) as [number];
    return Number(count);
  }
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
  } catch (err) {
    if (/no such key/.test((err as Error).message)) return 0;
    throw err;
  }
  for (const g of groups) {
    const rec: Record<string, unknown> = {};
    for (let i = 0; i + 1 < g.length; i += 2) rec[String(g[i])] = g[i + 1];
    // go-redis reads a nil lag (unknown after XDEL) as 0.
    if (rec.name === m.consumerGroup) return Number(rec.lag ?? 0);
  }
  return redis.xlen(stream);
}

export async function readTrigger(redis: Redis, trigger: Trigger): Promise<Reading> {
  const m = trigger.metadata;
  const key = (m.stream ?? m.listName) as string;
  const activation = Number(m.activationLagCount ?? m.activationListLength ?? 0);
  try {
    const v = await value(redis, trigger);
    return { trigger, key, value: v, active: v > activation };
  } catch (err) {
    return { trigger, key, value: -1, active: false, error: (err as Error).message };
  }
}

export function readTriggers(redis: Redis, triggers: Trigger[]): Promise<Reading[]> {
  return Promise.all(triggers.map((t) => readTrigger(redis, t)));
}

/** A short name for a trigger: its kind and key (`lag emb:req:m`, `pending ...`, `list ...`). */
export function triggerName(t: Trigger): string {
  const m = t.metadata;
  if (m.listName) return `list ${m.listName}`;
  if (!m.consumerGroup) return `length ${m.stream}`;
  return `${m.lagCount === undefined ? 'pending' : 'lag'} ${m.stream}`;
}

/** Names of the active triggers, sorted. */
export function activeNames(readings: Reading[]): string[] {
  return readings
    .filter((r) => r.active)
    .map((r) => triggerName(r.trigger))
    .sort();
}

/** The ScaledObject triggers the chart renders for one model `fx` (a fixture core), KEDA on, scale to zero. */
export function chartTriggers(prefix: string, redis: Record<string, unknown>): Trigger[] {
  const values = valuesFile({
    models: [{ name: 'fx', ref: 'fixture:8' }],
    worker: { keyPrefix: prefix },
    redis,
    autoscaling: { keda: { enabled: true, minReplicas: 0 } },
  });
  try {
    const so = helmTemplate([values.path]).find((o) => o.kind === 'ScaledObject');
    return so?.spec.triggers as Trigger[];
  } finally {
    values.dispose();
  }
}
