/**
 * Connection budget: every process opens up to PG_POOL_SIZE connections, and
 * a fleet scaled out past the server's max_connections fails at the worst
 * moment (a backfill's peak). Warn once at start-up instead.
 */
import type { SinkLog, SqlClient } from './client.js';
import { SQL } from './sql.js';

export async function checkConnectionBudget(
  client: SqlClient,
  poolSize: number,
  expectedProcesses: number,
  log: SinkLog | undefined,
): Promise<void> {
  const res = await client.query<{ max_connections: number; reserved: number }>(
    SQL.connectionLimits,
  );
  const row = res.rows[0];
  if (!row || !log) return;
  const available = row.max_connections - row.reserved;
  const wanted = poolSize * expectedProcesses;
  if (wanted > available) {
    log.warn(
      {
        pgPoolSize: poolSize,
        expectedProcesses,
        wanted,
        maxConnections: row.max_connections,
        reserved: row.reserved,
      },
      `sink: ${expectedProcesses} process(es) x PG_POOL_SIZE ${poolSize} = ${wanted} connections ` +
        `could exceed the ${available} the server allows ordinary roles (max_connections ` +
        `${row.max_connections} minus ${row.reserved} reserved), before counting other clients. ` +
        `Lower PG_POOL_SIZE or the replica count, raise max_connections, or put a ` +
        `transaction-mode pooler (PgBouncer) in front.`,
    );
  }
}
