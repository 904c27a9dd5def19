/**
 * Least-privilege Redis ACL profiles, as `ACL SETUSER` rules: the worker, a
 * producer of one tenant (source), the gateway (`streambed serve`, every
 * source its keys map to), an operator reading status, and an admin for
 * `dlq replay|purge`. `streambed acl` prints them; docs/acl.md explains
 * them; test/acl.test.ts runs the full path under each and asserts NOPERM
 * where a profile must not reach.
 *
 * Redis 7 selectors (rules in parentheses) let one user have a second set of
 * command + key rights: a producer may XREAD and XRANGE its own reply streams
 * without being able to XRANGE the shared request stream it writes to.
 */
import { SOURCE_NAME } from '../keys.js';

export const ACL_PROFILES = ['worker', 'producer', 'gateway', 'operator', 'admin'] as const;
export type AclProfile = (typeof ACL_PROFILES)[number];

export interface AclOptions {
  prefix: string;
  /** producer: the tenant's source (its bulk streams, progress and reply streams). */
  source?: string;
  /** producer: the models it may submit to (interactive streams are per model). */
  models?: readonly string[];
}

/**
 * Connection housekeeping every client does (ioredis: INFO ready check and,
 * behind sentinels, role check; CLIENT SETNAME; on a Cluster, CLUSTER SLOTS
 * to learn which node holds the fleet's slot and CLUSTER INFO as its ready
 * check).
 */
const CONNECTION = [
  '+ping',
  '+info',
  '+client|setname',
  '+hello',
  '+select',
  '+cluster|slots',
  '+cluster|info',
];

/** What `streambed worker` runs, directly and inside its scripts (publish, lease, bulk scheduler, trim). */
const WORKER_COMMANDS = [
  ...CONNECTION,
  // streams: read, fenced publish, leases, reclaim, trim, groups, status gauges
  '+xreadgroup',
  '+xack',
  '+xadd',
  '+xclaim',
  '+xpending',
  '+xgroup|create',
  '+xinfo|groups',
  '+xinfo|consumers',
  '+xinfo|stream',
  '+xtrim',
  '+xlen',
  '+xrange',
  '+xrevrange',
  '+eval',
  '+evalsha',
  '+script|load',
  '+type',
  // progress, scheduler, registry, weights, dedupe cache
  '+hincrby',
  '+hset',
  '+hget',
  '+hgetall',
  '+zrange',
  '+zscore',
  '+zadd',
  '+zrem',
  '+zremrangebyscore',
  '+zcard',
  '+smembers',
  '+sadd',
  // the bulk backlog list KEDA reads: a token popped with each per-source ack
  '+lpop',
  '+rpush',
  '+llen',
  '+get',
  '+set',
  '+mget',
  '+incrby',
  '+expire',
  '+exists',
  '+del',
  '+multi',
  '+exec',
  '+discard',
  '+time',
  '+scan',
];

/** `streambed status` and `dlq list`: reads only. */
const OPERATOR_COMMANDS = [
  ...CONNECTION,
  '+xinfo|groups',
  '+xinfo|consumers',
  '+xinfo|stream',
  '+xlen',
  '+xpending',
  '+xrange',
  '+xrevrange',
  '+hgetall',
  '+hget',
  '+smembers',
  '+scard',
  '+llen',
  '+zrange',
  '+zscore',
  '+zcard',
  '+get',
  '+mget',
  '+exists',
  '+type',
  '+scan',
  '+time',
  // status counts a job's failed answers in a read-only script (EVAL on %R~ keys is refused)
  '+eval_ro',
];

/** The rules after `ACL SETUSER <user> on >password`: keys, channels and commands. */
export function aclRules(profile: AclProfile, o: AclOptions): string[] {
  const p = o.prefix;
  switch (profile) {
    case 'worker':
      return ['resetkeys', `~${p}:*`, 'resetchannels', '-@all', ...WORKER_COMMANDS];
    case 'operator':
      return ['resetkeys', `%R~${p}:*`, 'resetchannels', '-@all', ...OPERATOR_COMMANDS];
    case 'admin':
      // dlq replay re-submits (XADD request streams, progress) and purge deletes records.
      return [
        'resetkeys',
        `~${p}:*`,
        'resetchannels',
        '-@all',
        ...OPERATOR_COMMANDS,
        // dlq replay: one script over the DLQ, the request stream and the schedule
        '+eval',
        '+evalsha',
        '+script|load',
        '+xadd',
        '+rpush',
        '+xdel',
        '+xtrim',
        '+hincrby',
        '+zadd',
        '+sadd',
        '+multi',
        '+exec',
        '+del',
      ];
    case 'producer':
      return producerRules(o);
    case 'gateway':
      return gatewayRules(p);
  }
}

/**
 * `streambed serve`: it derives each envelope's source from the API key, so
 * it submits for every source (any model's interactive and per-source bulk
 * streams, the scheduler entries, progress), but reads only its own reply
 * streams, `{p}:reply:{source}/gateway-{name}`, never a request stream's
 * entries (only XLEN and XINFO GROUPS there: backpressure and which models
 * are served) nor a tenant's own reply streams. Its rate-limit counters and
 * reply streams are the only keys it may expire or delete (selectors).
 */
function gatewayRules(p: string): string[] {
  return [
    'resetkeys',
    'resetchannels',
    '-@all',
    `~${p}:req:*`,
    // ZADD and SADD read their key too (RW key specs); no read command is granted.
    `~${p}:sched:*`,
    `~${p}:bulk-sources:*`,
    `%W~${p}:bulk-backlog:*`,
    `~${p}:progress:*`,
    ...CONNECTION,
    '+xadd',
    '+xlen',
    '+xinfo|groups',
    '+hincrby',
    '+zadd',
    '+sadd',
    '+rpush',
    // the model catalog: request streams by SCAN ... TYPE stream (key names, no entries)
    '+scan',
    '+multi',
    '+exec',
    '+discard',
    `(~${p}:gateway-rate:* +incrby +expire)`,
    `(~${p}:reply:*/gateway-* +xread +xtrim +xlen +del +expire)`,
  ];
}

/**
 * One tenant: write-only to the models' interactive streams (it may read
 * their length and groups for backpressure, never their entries), its own
 * per-source bulk streams, its progress hash, the shared scheduler entries
 * the SDK's bulk submit adds; read, trim and delete only its own reply
 * streams `{p}:reply:{source}/*` (the REPLY_TO_PATTERN `{p}:reply:{source}/*`
 * makes the fleet answer nowhere else).
 */
function producerRules(o: AclOptions): string[] {
  const { prefix: p, source, models = [] } = o;
  if (!source || !SOURCE_NAME.test(source))
    throw new Error('a producer profile needs --source (letters, digits, . _ : -)');
  if (models.length === 0) throw new Error('a producer profile needs --models');
  return [
    'resetkeys',
    'resetchannels',
    '-@all',
    ...models.flatMap((m) => [
      `%W~${p}:req:${m}`,
      `%R~${p}:req:${m}`,
      `~${p}:req:${m}:bulk:${source}`,
      // ZADD and SADD read their key too (RW key specs); no read command is granted.
      `~${p}:sched:${m}`,
      `~${p}:bulk-sources:${m}`,
      `%W~${p}:bulk-backlog:${m}`,
    ]),
    `~${p}:progress:${source}`,
    ...CONNECTION,
    '+xadd',
    '+xlen',
    '+xinfo|groups',
    // `streambed submit` checks a live worker serves the model (names and idle times, no entries)
    '+xinfo|consumers',
    '+hincrby',
    '+expire',
    '+zadd',
    '+sadd',
    '+rpush',
    '+multi',
    '+exec',
    '+discard',
    `(~${p}:reply:${source}/* +xread +xrange +xrevrange +xlen +xtrim +xdel +del +expire)`,
  ];
}

/** The whole `ACL SETUSER` line, the password left for the operator to fill in. */
export function aclSetUser(profile: AclProfile, user: string, o: AclOptions): string {
  // A selector has spaces: quoted, it stays one argument for redis-cli.
  const rules = aclRules(profile, o).map((r) => (r.includes(' ') ? `"${r}"` : r));
  return ['ACL SETUSER', user, 'on', '>REPLACE_WITH_PASSWORD', ...rules].join(' ');
}
