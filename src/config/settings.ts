/**
 * Every setting of the worker and CLI, in one table: its env var, its flag
 * (derived from the env name: THREADS -> --threads), its default, its schema
 * and its documentation. README's configuration table, the Helm chart and the
 * Kubernetes manifests must use exactly these names (a test holds them together).
 */
import { z } from 'zod';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max);
const bool = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no'])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes');
const optionalString = z.string().min(1).optional();

interface Setting<S extends z.ZodType> {
  env: string;
  schema: S;
  default: z.input<S> | undefined;
  doc: string;
}

function setting<S extends z.ZodType>(
  env: string,
  schema: S,
  def: z.input<S> | undefined,
  doc: string,
): Setting<S> {
  return { env, schema, default: def, doc };
}

export const SETTINGS = {
  redisUrl: setting(
    'REDIS_URL',
    z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://'),
    'redis://127.0.0.1:6379',
    'Redis URL; `rediss://` for TLS; ACL user and password go in the URL.',
  ),
  redisTlsCaFile: setting(
    'REDIS_TLS_CA_FILE',
    optionalString,
    undefined,
    'PEM file of the CA that signed the Redis server certificate (with `rediss://`).',
  ),
  redisSentinels: setting(
    'REDIS_SENTINELS',
    z
      .string()
      .regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'must be host:port[,host:port...]')
      .optional(),
    undefined,
    'Redis Sentinel: the sentinels, `host:port` comma separated. Every connection asks them for the master of REDIS_SENTINEL_NAME and follows a failover; REDIS_URL then gives only the user, password, database and TLS (`rediss://`) of the master and replicas, its host is not used.',
  ),
  redisSentinelName: setting(
    'REDIS_SENTINEL_NAME',
    z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
    'mymaster',
    'Redis Sentinel: the master name the sentinels monitor.',
  ),
  redisSentinelPassword: setting(
    'REDIS_SENTINEL_PASSWORD',
    optionalString,
    undefined,
    "Redis Sentinel: the sentinels' own password (`requirepass` in sentinel.conf), when they have one; the master and replicas take REDIS_URL's.",
  ),
  redisCluster: setting(
    'REDIS_CLUSTER',
    bool,
    false,
    'Redis Cluster: REDIS_URL is a seed node. Every key is then under the hash tag `{KEY_PREFIX}` (one slot per fleet, so each script and transaction stays on one node), and REPLY_TO_PATTERN must begin with it.',
  ),
  keyPrefix: setting(
    'KEY_PREFIX',
    z.string().regex(/^[A-Za-z0-9._-]{1,32}$/),
    'sb',
    'Prefix of every Redis key.',
  ),
  group: setting(
    'GROUP',
    z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/),
    'sb-workers',
    'Consumer group name.',
  ),
  models: setting(
    'MODELS',
    z.string(),
    '',
    'Model table: `name=hf-id-or-path[;opt=value...]`, comma separated. Options: dtype (q8|fp32|fp16), pooling (mean|cls), normalize (true|false), maxTokens. `name=openai:<provider-model>` is a remote OpenAI-compatible API, options baseUrl, apiKeyEnv (the env var NAME holding the key), rpm, tpm, maxInputs, maxRequestTokens, concurrency, dimensions, timeoutMs, budgetTokensPerDay, encoding: docs/providers.md.',
  ),
  allowRemoteModels: setting(
    'ALLOW_REMOTE_MODELS',
    bool,
    true,
    'Allow downloading models from the Hugging Face hub; local folders always work offline.',
  ),
  modelCacheDir: setting(
    'MODEL_CACHE_DIR',
    optionalString,
    undefined,
    'Where downloaded models are cached (default: Transformers.js cache).',
  ),
  consumerName: setting(
    'CONSUMER_NAME',
    optionalString,
    undefined,
    'Consumer name; default `{POD_NAME or hostname}-{pid}`.',
  ),
  threads: setting(
    'THREADS',
    int(1, 256).optional(),
    undefined,
    'Worker threads per process; default: cores / INTRA_OP_THREADS.',
  ),
  intraOpThreads: setting(
    'INTRA_OP_THREADS',
    int(1, 256),
    1,
    'ONNX Runtime threads per worker thread.',
  ),
  batchSize: setting('BATCH_SIZE', int(1, 4096), 32, 'Most texts in one micro-batch.'),
  maxBatchTokens: setting(
    'MAX_BATCH_TOKENS',
    int(16),
    512,
    'Most padded tokens (texts x longest) in one micro-batch. On CPU batching pays only for short texts: 512 lets ~16-token texts go up to 32 at a time; texts over 112 tokens always run alone.',
  ),
  inFlightBatches: setting(
    'IN_FLIGHT_BATCHES',
    int(1, 1024).optional(),
    undefined,
    'Micro-batches queued or running at once; default: 2 x THREADS.',
  ),
  readCount: setting('READ_COUNT', int(1, 10000), 64, 'Entries fetched per XREADGROUP call.'),
  blockMs: setting('BLOCK_MS', int(1, 60000), 1000, 'XREADGROUP BLOCK timeout.'),
  bulkMinShare: setting(
    'BULK_MIN_SHARE',
    z.coerce.number().gt(0).max(0.9),
    0.1,
    'Least fraction of the entries a worker reads that go to the bulk lane while it has backlog, however busy the interactive lane is.',
  ),
  bulkInFlightBatches: setting(
    'BULK_IN_FLIGHT_BATCHES',
    int(1, 1024).optional(),
    undefined,
    'Micro-batches of bulk work a worker holds while the interactive lane is quiet; default: THREADS + 2. Bulk batches start only on an idle thread, so an interactive entry waits behind at most the bulk batch running on each thread; more keeps threads fed on very short batches.',
  ),
  dedupeTtlS: setting(
    'DEDUPE_TTL_S',
    int(0, 30 * 24 * 3600),
    0,
    'Without a sink: seconds a computed vector stays in the fleet-wide dedupe cache, so identical text for the same model is computed once and answered `deduped` (e.g. 600); 0 = no cache.',
  ),
  dedupeMaxEntries: setting(
    'DEDUPE_MAX_ENTRIES',
    int(0),
    20000,
    'Most vectors in the dedupe cache per model (Redis memory ~ this x (4 x dim + 100) bytes); 0 = no cache.',
  ),
  backfillMaxInFlight: setting(
    'BACKFILL_MAX_IN_FLIGHT',
    int(1),
    5000,
    '`streambed backfill`: most pages submitted and not yet answered at once. Keep RESULTS_MAXLEN above it: answers not yet recorded by the job wait on its reply stream.',
  ),
  backfillReplyTtlS: setting(
    'BACKFILL_REPLY_TTL_S',
    int(0),
    604800,
    "`streambed backfill`: seconds a job's reply stream lives after the last answer the job recorded (0 = forever).",
  ),
  claimIdleMs: setting(
    'CLAIM_IDLE_MS',
    int(100),
    10000,
    'Entries pending longer than this on another consumer are reclaimed. A live worker renews what it holds every CLAIM_IDLE_MS / 4, however slow its batches, so only a dead, frozen or cut-off worker passes it: this is the crash-recovery time, not a bound on batch time.',
  ),
  batchTimeoutMs: setting(
    'BATCH_TIMEOUT_MS',
    int(100),
    15000,
    'A micro-batch running longer than this on its thread is overdue. Inside ONNX Runtime (which always ends, and cannot be interrupted without aborting the process) it is waited for; anywhere else its texts are sent again in halves, the first run to finish answers each, and its thread is replaced at 2x this. A text that takes its thread down alone 3 times is dead-lettered model_error.',
  ),
  threadHeapMb: setting(
    'THREAD_HEAP_MB',
    int(16).optional(),
    undefined,
    'V8 old-generation limit per worker thread; a thread over it dies alone and is replaced (model weights live outside this heap).',
  ),
  claimIntervalMs: setting(
    'CLAIM_INTERVAL_MS',
    int(50),
    2000,
    "How often the reclaimer looks for entries idle past CLAIM_IDLE_MS; a crashed worker's entries are answered within CLAIM_IDLE_MS + this + one batch.",
  ),
  maxDeliveries: setting(
    'MAX_DELIVERIES',
    int(1, 1000),
    5,
    'Deliveries after which an entry is dead-lettered.',
  ),
  drainTimeoutMs: setting(
    'DRAIN_TIMEOUT_MS',
    int(0),
    30000,
    'On SIGTERM, how long in-flight batches may finish before a forced exit.',
  ),
  maxEnvelopeBytes: setting(
    'MAX_ENVELOPE_BYTES',
    int(1),
    1048576,
    'Most bytes of text in one envelope.',
  ),
  maxMetaBytes: setting('MAX_META_BYTES', int(0), 16384, 'Most bytes of encoded `meta`.'),
  maxChunks: setting(
    'MAX_CHUNKS',
    int(1),
    256,
    'Most chunks in one envelope: its `texts`, or the windows a chunked page is split into (more: `too_large`).',
  ),
  replyToPattern: setting(
    'REPLY_TO_PATTERN',
    z.string().min(1).optional(),
    undefined,
    "Glob that `reply_to` must match; default `{KEY_PREFIX}:reply:{source}/*`, where `{source}` stands for the envelope's source, so each source is answered only into its own streams (docs/acl.md). `sb:reply:*` is the earlier default, for producers that still name other streams (docs/operations.md, migration).",
  ),
  resultsMaxLen: setting(
    'RESULTS_MAXLEN',
    int(0),
    1000000,
    'Approximate MAXLEN kept on result streams (0 = unbounded).',
  ),
  trimIntervalMs: setting(
    'TRIM_INTERVAL_MS',
    int(0),
    60000,
    'How often request streams are trimmed of acknowledged history, never past an unacknowledged entry (0 = never).',
  ),
  metricsPort: setting(
    'METRICS_PORT',
    int(0, 65535),
    9464,
    'Port of /metrics, /healthz and /readyz (0 = disabled).',
  ),
  metricsSources: setting(
    'METRICS_SOURCES',
    z
      .string()
      .regex(
        /^([A-Za-z0-9._:-]{1,128}(,[A-Za-z0-9._:-]{1,128})*)?$/,
        'must be source names, comma separated',
      )
      .transform((v) => (v ? [...new Set(v.split(','))] : [])),
    '',
    'Sources whose progress counters /metrics exports with a `source` label (comma separated); others get no per-source series.',
  ),
  gatewayPort: setting(
    'GATEWAY_PORT',
    int(0, 65535),
    8080,
    '`streambed serve`: port of the OpenAI-compatible HTTP gateway (`POST /v1/embeddings`, `GET /v1/models`, /metrics, /healthz, /readyz; 0 = any free port).',
  ),
  gatewayKeepAliveS: setting(
    'GATEWAY_KEEP_ALIVE_S',
    int(1, 3600),
    65,
    "`streambed serve`: seconds an idle keep-alive connection stays open. Longer than the idle timeout of what sits in front (AWS ALB and nginx ingress: 60 s), so a proxy or client never sends a request on a connection the gateway is closing, which it sees as a 502 or `socket hang up` (Node's default is 5 s).",
  ),
  gatewayTimeoutMs: setting(
    'GATEWAY_TIMEOUT_MS',
    int(100),
    30000,
    '`streambed serve`: how long a request waits for its vectors before a 504; its envelopes carry this as `deadline_ms`, so a worker that reaches them later answers `expired` instead of computing.',
  ),
  gatewayMaxBacklog: setting(
    'GATEWAY_MAX_BACKLOG',
    int(1),
    10000,
    "`streambed serve`: a request is refused 429 (with Retry-After) before anything is queued while its model's stream holds more than this many unprocessed entries (lag + pending, read at most every 250 ms).",
  ),
  gatewayMaxInputs: setting(
    'GATEWAY_MAX_INPUTS',
    int(1, 100000),
    2048,
    "`streambed serve`: most inputs in one request (OpenAI's own limit; LangChain's OpenAIEmbeddings sends up to 1000). Each input is its own envelope, so each is bounded by MAX_ENVELOPE_BYTES.",
  ),
  gatewayMaxRequestBytes: setting(
    'GATEWAY_MAX_REQUEST_BYTES',
    int(1),
    4194304,
    '`streambed serve`: most bytes of text in one request, all inputs together (413 above it); its JSON body may be up to about twice this.',
  ),
  gatewayLongInput: setting(
    'GATEWAY_LONG_INPUT',
    z.enum(['truncate', 'chunk', 'error']),
    'truncate',
    "`streambed serve`: an input longer than its model reads: `truncate` embeds its first tokens (the model's limit), `chunk` embeds it whole as the normalised mean of its chunks' vectors, `error` answers 400 `input_too_long` (OpenAI's behaviour). A request's `X-Streambed-Long-Input` header overrides it.",
  ),
  gatewayKeysFile: setting(
    'GATEWAY_KEYS_FILE',
    optionalString,
    undefined,
    '`streambed serve`: API keys file (a mounted Secret), one `key source [requests-per-minute]` per line; unset = no authentication, every request counted as GATEWAY_SOURCE.',
  ),
  gatewaySource: setting(
    'GATEWAY_SOURCE',
    z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 chars of [A-Za-z0-9._:-]'),
    'gateway',
    '`streambed serve`: source (tenant) of requests when no keys file is configured.',
  ),
  sink: setting(
    'SINK',
    optionalString,
    undefined,
    'Vector sink: `pglite:DIR` for embedded Postgres+pgvector in DIR; unset with PG_URL unset = streams only.',
  ),
  pgUrl: setting(
    'PG_URL',
    optionalString,
    undefined,
    'Postgres URL (with the pgvector extension) to upsert vectors into.',
  ),
  pgPoolSize: setting('PG_POOL_SIZE', int(1, 1000), 4, 'Postgres connections per process.'),
  sinkTablePrefix: setting(
    'SINK_TABLE_PREFIX',
    z.string().regex(/^[a-z_][a-z0-9_]{0,30}$/),
    'sb_vectors_',
    'Sink table name prefix; the model short name follows.',
  ),
  sinkIndex: setting(
    'SINK_INDEX',
    z.enum(['none', 'hnsw', 'ivfflat']),
    'none',
    'Vector index created on sink tables.',
  ),
  sinkStorePassages: setting(
    'SINK_STORE_PASSAGES',
    bool,
    false,
    "With a sink: store each chunk's text in the `passage` column beside its vector, so `streambed search` shows the passage. Off keeps page text out of the database (vectors, offsets and meta only).",
  ),
  logLevel: setting(
    'LOG_LEVEL',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    'info',
    'Log level.',
  ),
  logFormat: setting(
    'LOG_FORMAT',
    z.enum(['pretty', 'json']).optional(),
    undefined,
    'Log format: `pretty` (a readable line per event) or `json` (pino: numeric `level`, epoch-ms `time`, for log shippers); default pretty when stdout is a terminal, else json.',
  ),
  logSummaryS: setting(
    'LOG_SUMMARY_S',
    int(0, 86400),
    60,
    'A worker logs one info line per this many seconds of work (entries answered, rate, entries held); 0 = never.',
  ),
  consolePort: setting(
    'CONSOLE_PORT',
    int(0, 65535),
    8081,
    '`streambed console`: port of the web console (0 = any free port, printed at start).',
  ),
  consoleHost: setting(
    'CONSOLE_HOST',
    z.string().min(1),
    '127.0.0.1',
    '`streambed console`: address to listen on; `0.0.0.0` to serve other machines (in a pod).',
  ),
  consoleAdminKeyFile: setting(
    'CONSOLE_ADMIN_KEY_FILE',
    optionalString,
    undefined,
    "`streambed console`: file holding the admin key; without it the console is read-only. Replay, purge and showing a dead letter's text need `Authorization: Bearer <key>`.",
  ),
} as const;

export type SettingKey = keyof typeof SETTINGS;

/** Every setting that says where Redis is and how to log in: each command that connects takes them all. */
export const REDIS_SETTINGS = [
  'redisUrl',
  'redisTlsCaFile',
  'redisSentinels',
  'redisSentinelName',
  'redisSentinelPassword',
  'redisCluster',
] as const satisfies readonly SettingKey[];
export type Config = { [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };

/** The allowed values of an enum setting (LOG_LEVEL, SINK_INDEX...), for --help and the README table. */
export function choicesOf(schema: z.ZodType): readonly string[] | undefined {
  const inner = schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
  return inner instanceof z.ZodEnum ? (inner.options as string[]) : undefined;
}

/** `THREADS` -> `--threads`, `REDIS_URL` -> `--redis-url`. */
export function flagName(env: string): string {
  return `--${env.toLowerCase().replace(/_/g, '-')}`;
}

/** `--redis-url` -> `redisUrl` (commander's attribute name for the flag). */
export function flagAttribute(env: string): string {
  return env.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}
