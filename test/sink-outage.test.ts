// The `pg` sink path when its server goes away: a pglite-socket server in a
// child process is killed or stopped mid-run and restarted on the same port
// with the same data. Failures must be transient (`sink_unavailable`), and a
// retried batch must land without duplicates.
import { rm } from 'node:fs/promises';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import { createSink, type Sink, type SinkRow } from '../src/sink/index.js';
import { type PgliteServer, startPgliteServer } from './helpers/pglite-server.js';

const warnings: string[] = [];
const log = { warn: (_obj: object, msg: string) => void warnings.push(msg) };
const prefix = `o${Math.random().toString(36).slice(2, 10)}_`;
const table = `${prefix}outage`;

function makeRows(n: number, dim: number): SinkRow[] {
  return Array.from({ length: n }, (_, i) => ({
    source: 'docs',
    id: `p${i}`,
    chunk: 0,
    hash: `h${i}`,
    vector: Float32Array.from({ length: dim }, (_v, j) => Math.sin(i * 31 + j)),
  }));
}

async function failure(p: Promise<unknown>): Promise<StreambedError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StreambedError);
  return err as StreambedError;
}

describe('sink over pglite-socket: outages', () => {
  let server: PgliteServer;
  const sinks: Sink[] = [];
  const open = (expectedProcesses = 1) => {
    const sink = createSink(
      {
        pgUrl: server.url,
        pgPoolSize: 4,
        sinkTablePrefix: prefix,
        sinkIndex: 'none',
        expectedProcesses,
      },
      log,
    );
    if (!sink) throw new Error('createSink returned no sink for PG_URL');
    sinks.push(sink);
    return sink;
  };
  const count = async () => {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      const res = await c.query<{ n: number; keys: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT (source, id, chunk))::int AS keys FROM "${table}"`,
      );
      return res.rows[0];
    } finally {
      await c.end();
    }
  };

  // initdb of a fresh data dir: seconds, more on a busy machine.
  beforeAll(async () => {
    server = await startPgliteServer();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(sinks.map((s) => s.close()));
    await server?.stop();
    if (server) await rm(server.dataDir, { recursive: true, force: true });
  });

  it('a killed server fails calls as sink_unavailable; after restart a retry lands once', async () => {
    const sink = open();
    await sink.ensureTable({ model: 'outage', modelRef: 'org/outage', dim: 32 });
    const rows = makeRows(1000, 32);
    await sink.upsert('outage', rows.slice(0, 500));
    expect(sink.healthy()).toBe(true);

    await server.stop({ kill: true });
    const err = await failure(sink.upsert('outage', rows.slice(500)));
    expect(err.code).toBe('sink_unavailable');
    expect(err.transient).toBe(true);
    expect(sink.healthy()).toBe(false);
    expect((await failure(sink.lookup('outage', rows.slice(0, 5)))).code).toBe('sink_unavailable');

    await server.restart();
    // What was written before the crash survived it.
    expect((await sink.lookup('outage', rows.slice(0, 500))).size).toBe(500);
    // What the worker does: the failed batch stayed pending and is retried; the
    // first batch is re-delivered too (say its XACK was lost). No duplicates.
    await sink.upsert('outage', rows.slice(500));
    await sink.upsert('outage', rows);
    expect(sink.healthy()).toBe(true);
    expect(await count()).toEqual({ n: 1000, keys: 1000 });
    expect((await sink.lookup('outage', rows)).size).toBe(1000);
  });

  it('a cleanly stopped server is unavailable too, and start-up waits for it', async () => {
    await server.stop();
    const late = open();
    const err = await failure(
      late.ensureTable({ model: 'outage', modelRef: 'org/outage', dim: 32 }),
    );
    expect(err.code).toBe('sink_unavailable');
    expect(late.healthy()).toBe(false);

    await server.restart();
    await late.ensureTable({ model: 'outage', modelRef: 'org/outage', dim: 32 });
    expect(late.healthy()).toBe(true);
    expect(await count()).toEqual({ n: 1000, keys: 1000 });
  });

  it('warns when processes x PG_POOL_SIZE could exceed max_connections', async () => {
    warnings.length = 0;
    await open(1).ensureTable({ model: 'outage', modelRef: 'org/outage', dim: 32 });
    expect(warnings.filter((w) => w.includes('max_connections'))).toEqual([]);
    await open(30).ensureTable({ model: 'outage', modelRef: 'org/outage', dim: 32 });
    expect(warnings.find((w) => w.includes('max_connections'))).toMatch(
      /30 process\(es\) x PG_POOL_SIZE 4 = 120 connections/,
    );
  });
});
