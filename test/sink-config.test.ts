// Sink configuration and naming, and the embedded `SINK=pglite:DIR` path end
// to end with no server at all (including data surviving a reopen).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import { toSinkError } from '../src/sink/driver-errors.js';
import { createSink, type SinkConfig, sinkKey, sinkTableName } from '../src/sink/index.js';

const base: SinkConfig = { pgPoolSize: 4, sinkTablePrefix: 'sb_vectors_', sinkIndex: 'none' };
const dirs: string[] = [];
/** Each embedded test runs initdb for a fresh dir: seconds, more on a busy machine. */
const EMBEDDED_TIMEOUT_MS = 120_000;

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('createSink', () => {
  it('returns undefined with no sink configured (streams only)', () => {
    expect(createSink(base)).toBeUndefined();
  });

  it('rejects SINK and PG_URL together, and unknown SINK forms', () => {
    expect(() => createSink({ ...base, sink: 'pglite:/tmp/x', pgUrl: 'postgres://h/db' })).toThrow(
      expect.objectContaining({ code: 'config' }) as Error,
    );
    expect(() => createSink({ ...base, sink: 'postgres://h/db' })).toThrow(/SINK=pglite:DIR/);
    expect(() => createSink({ ...base, sink: 'pglite:' })).toThrow(StreambedError);
  });

  it(
    'embedded pglite:DIR stores, finds and keeps vectors across a reopen, with no server',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sb-sink-cfg-'));
      dirs.push(dir);
      const config = { ...base, sink: `pglite:${join(dir, 'db')}`, sinkIndex: 'hnsw' as const };
      const vector = Float32Array.from({ length: 384 }, (_v, i) => Math.cos(i));
      const row = { source: 'docs', id: 'readme', chunk: 0, hash: 'abc', vector, meta: { t: 1 } };

      const first = createSink(config)!;
      await first.ensureTable({ model: 'minilm', modelRef: 'Xenova/all-MiniLM-L6-v2', dim: 384 });
      await first.upsert('minilm', [row]);
      await first.close();
      expect(first.healthy()).toBe(false);

      const again = createSink(config)!;
      await again.ensureTable({ model: 'minilm', modelRef: 'Xenova/all-MiniLM-L6-v2', dim: 384 });
      const got = await again.lookup('minilm', [row]);
      expect(Array.from(got.get(sinkKey('docs', 'readme', 0)) ?? [])).toEqual(Array.from(vector));
      const [hit] = await again.search('minilm', vector, 1);
      expect(hit).toMatchObject({ source: 'docs', id: 'readme', chunk: 0, meta: { t: 1 } });
      await again.close();
    },
    EMBEDDED_TIMEOUT_MS,
  );
});

describe('embedded data dir lock', () => {
  const table = { model: 'lock', modelRef: 'org/lock', dim: 4 };

  it(
    'refuses a second opener of the same dir until the first closes',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sb-sink-lock-'));
      dirs.push(dir);
      const config = { ...base, sink: `pglite:${dir}` };
      const first = createSink(config)!;
      await first.ensureTable(table);
      const second = createSink(config)!;
      await expect(second.ensureTable(table)).rejects.toThrow(
        expect.objectContaining({
          code: 'config',
          message: expect.stringMatching(/in use by process/),
        }) as Error,
      );
      await first.close();
      await second.ensureTable(table);
      await second.close();
    },
    EMBEDDED_TIMEOUT_MS,
  );

  it(
    'takes over a lock left by a process that is gone',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sb-sink-lock-'));
      dirs.push(dir);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'streambed-sink.lock'), '2147483646\n');
      const sink = createSink({ ...base, sink: `pglite:${dir}` })!;
      await sink.ensureTable(table);
      await sink.close();
    },
    EMBEDDED_TIMEOUT_MS,
  );
});

describe('sinkTableName', () => {
  it('derives a safe name from prefix and model short name', () => {
    expect(sinkTableName('sb_vectors_', 'minilm')).toBe('sb_vectors_minilm');
    expect(sinkTableName('sb_vectors_', 'MiniLM-L6.v2')).toBe('sb_vectors_minilm_l6_v2');
  });

  it('keeps long names within Postgres limits and distinct', () => {
    const a = sinkTableName('sb_vectors_', 'x'.repeat(80) + 'a');
    const b = sinkTableName('sb_vectors_', 'x'.repeat(80) + 'b');
    expect(a.length).toBeLessThanOrEqual(55);
    expect(a).not.toBe(b);
  });

  it('rejects an unsafe prefix', () => {
    expect(() => sinkTableName('Bad-Prefix', 'm')).toThrow(/SINK_TABLE_PREFIX/);
  });
});

describe('toSinkError', () => {
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
  it.each([
    [withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), 'sink_unavailable'],
    [new Error('Connection terminated unexpectedly'), 'sink_unavailable'],
    [new Error('timeout exceeded when trying to connect'), 'sink_unavailable'],
    [withCode('the database system is starting up', '57P03'), 'sink_unavailable'],
    [withCode('sorry, too many clients already', '53300'), 'sink_unavailable'],
    [withCode('password authentication failed', '28P01'), 'config'],
    [withCode('relation does not exist', '42P01'), 'internal'],
    [new TypeError('x is not a function'), 'internal'],
  ])('%s -> %s', (err, code) => {
    expect(toSinkError(err, 'query').code).toBe(code);
  });
});
