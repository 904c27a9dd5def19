/**
 * The optional vector sink: Postgres + pgvector over `pg` (PG_URL) or
 * embedded PGlite (SINK=pglite:DIR). No sink configured = streams only.
 * Operator docs: docs/sink.md.
 */
import { StreambedError } from '../errors.js';
import type { SinkLog } from './client.js';
import { createPgClient } from './pg-client.js';
import { createPgliteClient } from './pglite-client.js';
import { createSqlSink } from './sql-sink.js';
import type { Sink, SinkConfig } from './types.js';

export type { SinkLog } from './client.js';
export { INDEX_DEFAULTS, sinkTableName } from './sql.js';
export type {
  LookupOptions,
  Sink,
  SinkConfig,
  SinkHit,
  SinkKey,
  SinkRow,
  SinkTable,
} from './types.js';
export { sinkKey } from './types.js';

const PGLITE_SCHEME = 'pglite:';

/**
 * The configured sink, or undefined when neither SINK nor PG_URL is set.
 * Connects lazily: the first ensureTable() opens the pool or the data dir.
 */
export function createSink(config: SinkConfig, log?: SinkLog): Sink | undefined {
  const { sink, pgUrl } = config;
  if (sink !== undefined && pgUrl !== undefined) {
    throw new StreambedError(
      'config',
      'SINK and PG_URL are both set: choose one (SINK=pglite:DIR embedded, or PG_URL for a server)',
    );
  }
  if (sink === undefined && pgUrl === undefined) return undefined;
  const options = {
    tablePrefix: config.sinkTablePrefix,
    index: config.sinkIndex,
    indexParams: {
      ...(config.hnswM !== undefined && { hnswM: config.hnswM }),
      ...(config.hnswEfConstruction !== undefined && {
        hnswEfConstruction: config.hnswEfConstruction,
      }),
      ...(config.ivfflatLists !== undefined && { ivfflatLists: config.ivfflatLists }),
    },
    expectedProcesses: config.expectedProcesses ?? 1,
    log,
  };
  if (pgUrl !== undefined) {
    return createSqlSink(createPgClient({ url: pgUrl, poolSize: config.pgPoolSize, log }), options);
  }
  const dir = sink?.startsWith(PGLITE_SCHEME) ? sink.slice(PGLITE_SCHEME.length) : '';
  if (dir === '') {
    throw new StreambedError(
      'config',
      `SINK ${JSON.stringify(sink)} is not understood: use SINK=pglite:DIR (or PG_URL for a Postgres server)`,
    );
  }
  return createSqlSink(createPgliteClient(dir), options);
}
