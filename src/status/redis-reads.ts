/**
 * Reads of stream, group, DLQ and progress state, shared by `streambed status`
 * and the /metrics scrape. Each `queue*` function adds its commands to a
 * pipeline (so a whole picture of the fleet costs one round trip) and returns
 * a parser for its slice of the replies. Missing streams and groups are normal
 * (a model nobody has written to yet) and read as empty, not as errors.
 */
import type { ChainableCommander } from 'ioredis';

export type Reply = [Error | null, unknown];
export type Parser<T> = (replies: readonly Reply[]) => T;

export interface PendingEntry {
  id: string;
  consumer: string;
  /** Milliseconds since the entry was last delivered (XPENDING's idle). */
  idleMs: number;
  deliveries: number;
}

export interface GroupRecord {
  lag: number | null;
  pending: number;
  entriesRead: number | null;
  consumers: number;
  lastDeliveredId: string;
}

export interface StreamRead {
  exists: boolean;
  length: number;
  /** The group's row of XINFO GROUPS; null when the stream or the group does not exist. */
  group: GroupRecord | null;
  /** The oldest pending entries (by id), at most the sample size asked for. */
  pending: PendingEntry[];
}

export interface ConsumerRecord {
  name: string;
  pending: number;
  /** Since its last read attempt (Redis >= 7.2); before 7.2, since its last read that got entries. */
  idleMs: number;
  /** Since its last read that got entries (Redis >= 7.2); null on older servers. */
  inactiveMs: number | null;
}

export interface ProgressRecord {
  submitted: number;
  done: number;
  /** Answered with an error and not replayed since (see queueProgress). */
  failed: number;
  deduped: number;
  /** DLQ entries re-submitted by `dlq replay` (each answered, and counted, again). */
  replayed: number;
  lastDoneMs: number | null;
}

/** Queue XLEN, XINFO GROUPS and XPENDING (oldest `sample` entries) for one stream. */
export function queueStreamRead(
  p: ChainableCommander,
  stream: string,
  group: string,
  sample: number,
): Parser<StreamRead> {
  const at = p.length;
  p.xlen(stream);
  p.xinfo('GROUPS', stream);
  p.xpending(stream, group, '-', '+', Math.max(1, sample));
  return (replies) => {
    const [length, groups, pending] = replies.slice(at, at + 3) as [Reply, Reply, Reply];
    const rows = ok<unknown[][] | null>(groups, null);
    const mine = (rows ?? []).map(toRecord).find((g) => String(g.name) === group);
    return {
      // XINFO GROUPS fails with "no such key" only when the stream does not exist.
      exists: rows !== null,
      length: Number(ok<number>(length, 0)),
      group: mine
        ? {
            lag: mine.lag === null || mine.lag === undefined ? null : Number(mine.lag),
            pending: Number(mine.pending),
            entriesRead:
              mine['entries-read'] === null || mine['entries-read'] === undefined
                ? null
                : Number(mine['entries-read']),
            consumers: Number(mine.consumers),
            lastDeliveredId: String(mine['last-delivered-id']),
          }
        : null,
      pending: pendingRows(ok<unknown[]>(pending, [])).slice(0, sample),
    };
  };
}

/** Queue XINFO CONSUMERS for one stream's group. */
export function queueConsumers(
  p: ChainableCommander,
  stream: string,
  group: string,
): Parser<ConsumerRecord[]> {
  const at = p.length;
  p.xinfo('CONSUMERS', stream, group);
  return (replies) =>
    ok<unknown[][]>(replies[at] as Reply, []).map((flat) => {
      const r = toRecord(flat);
      return {
        name: String(r.name),
        pending: Number(r.pending),
        idleMs: Number(r.idle),
        inactiveMs: r.inactive === undefined ? null : Number(r.inactive),
      };
    });
}

/**
 * Queue XPENDING for the oldest pending entry, optionally of one consumer or
 * only among entries idle at least `minIdleMs` (exact threshold checks).
 */
export function queueOldestPending(
  p: ChainableCommander,
  stream: string,
  group: string,
  opts: { consumer?: string; minIdleMs?: number } = {},
): Parser<PendingEntry | null> {
  const at = p.length;
  const args: (string | number)[] = [stream, group];
  if (opts.minIdleMs !== undefined) args.push('IDLE', opts.minIdleMs);
  args.push('-', '+', 1);
  if (opts.consumer !== undefined) args.push(opts.consumer);
  p.call('XPENDING', ...args);
  return (replies) => pendingRows(ok<unknown[]>(replies[at] as Reply, []))[0] ?? null;
}

export function queueLength(p: ChainableCommander, key: string): Parser<number> {
  const at = p.length;
  p.xlen(key);
  return (replies) => Number(ok<number>(replies[at] as Reply, 0));
}

/** A remote model's fleet state: the cooldown's end (epoch ms) and tokens spent today (with a budget). */
export interface ProviderSample {
  cooldownUntilMs: number | null;
  tokensToday: number | null;
  /** Why the provider last refused the model (401/403/404), within the hour; null when it did not. */
  refused: string | null;
}

export function queueProvider(
  p: ChainableCommander,
  keys: { cooldown: string; budget: string; refused: string },
): Parser<ProviderSample | null> {
  const at = p.length;
  p.get(keys.cooldown);
  p.get(keys.budget);
  p.get(keys.refused);
  return (replies) => {
    const [until, spent, refused] = [0, 1, 2].map((i) =>
      ok<string | null>(replies[at + i] as Reply, null),
    );
    if (until === null && spent === null && refused === null) return null;
    return {
      cooldownUntilMs: until == null ? null : Number(until),
      tokensToday: spent == null ? null : Number(spent),
      refused: refused ?? null,
    };
  };
}

export function queueMembers(p: ChainableCommander, key: string): Parser<string[]> {
  const at = p.length;
  p.smembers(key);
  return (replies) => ok<string[]>(replies[at] as Reply, []);
}

/** A hash field read as a number (0 when absent). */
export function queueHashNumber(p: ChainableCommander, key: string, field: string): Parser<number> {
  const at = p.length;
  p.hget(key, field);
  return (replies) => Number(ok<string | null>(replies[at] as Reply, null) ?? 0);
}

export interface StreamInfo {
  /** Entries ever added (XINFO STREAM entries-added): counts trimmed entries too. */
  entriesAdded: number;
  firstEntry: { id: string; fields: Record<string, string> } | null;
  lastEntry: { id: string; fields: Record<string, string> } | null;
}

/** Queue XINFO STREAM; null when the stream does not exist. */
export function queueStreamInfo(p: ChainableCommander, key: string): Parser<StreamInfo | null> {
  const at = p.length;
  p.xinfo('STREAM', key);
  return (replies) => {
    const flat = ok<unknown[] | null>(replies[at] as Reply, null);
    if (!flat) return null;
    const r = toRecord(flat);
    const entry = (e: unknown) => {
      if (!Array.isArray(e)) return null;
      const [id, fields] = e as [string, unknown[]];
      return { id: String(id), fields: toRecord(fields) as Record<string, string> };
    };
    return {
      entriesAdded: Number(r['entries-added'] ?? r.length),
      firstEntry: entry(r['first-entry']),
      lastEntry: entry(r['last-entry']),
    };
  };
}

export function queueProgress(p: ChainableCommander, key: string): Parser<ProgressRecord> {
  const at = p.length;
  p.hgetall(key);
  return (replies) => {
    const h = ok<Record<string, string>>(replies[at] as Reply, {});
    const n = (f: string) => (h[f] === undefined ? 0 : Number(h[f]));
    // A replayed dead letter was counted `failed` when it was dead-lettered and is
    // counted again when its replay is answered: without taking its first failure
    // back, done + failed + deduped would pass submitted (201/200 after one replay).
    return {
      submitted: n('submitted'),
      done: n('done'),
      failed: Math.max(0, n('failed') - n('replayed')),
      deduped: n('deduped'),
      replayed: n('replayed'),
      lastDoneMs: h.last_done_ms === undefined ? null : Number(h.last_done_ms),
    };
  };
}

/** Queue TIME: the server's clock, the same clock entry ids are made of. */
export function queueServerTime(p: ChainableCommander): Parser<number> {
  const at = p.length;
  p.time();
  return (replies) => {
    const t = ok<[string, string]>(replies[at] as Reply, ['0', '0']);
    const ms = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000);
    return ms > 0 ? ms : Date.now();
  };
}

/** Entry id -> epoch ms it was added (the id's time part). */
export function idTimeMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/**
 * A reply's value, or `fallback` for the errors that mean "nothing there yet"
 * (no such key, no such group). Any other error is a real failure and throws.
 */
function ok<T>(reply: Reply, fallback: T): T {
  const [err, value] = reply;
  if (!err) return value as T;
  if (/no such key|NOGROUP/i.test(err.message)) return fallback;
  throw err;
}

function pendingRows(rows: unknown[]): PendingEntry[] {
  return (rows as Array<[string, string, number | string, number | string]>).map(
    ([id, consumer, idle, deliveries]) => ({
      id: String(id),
      consumer: String(consumer),
      idleMs: Number(idle),
      deliveries: Number(deliveries),
    }),
  );
}

function toRecord(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}
