/**
 * The commands a new operator runs, as subprocesses against real Redis and
 * real workers (fixture model: deterministic vectors, so a stored text's own
 * row is its nearest neighbour): submit's up-front checks and output,
 * backfill's summary, dlq replay's skipping, search over a pglite folder and
 * over Postgres (pglite-socket with pgvector), and the worker's log lines.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StreambedClient } from '../src/client/client.js';
import { keys } from '../src/keys.js';
import { createSink } from '../src/sink/index.js';
import { fill } from '../workers/fixture-core.js';
import { runCli } from './helpers/cli.js';
import { type PgliteServer, startPgliteServer } from './helpers/pglite-server.js';
import { deletePrefix, randomPrefix, redisClient, until } from './helpers/redis.js';
import { spawnWorker, startTestWorker, stopAllWorkers, stopTestWorker } from './helpers/worker.js';

const MODELS = 'fx=fixture:8';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-clicmd-'));
const corpus = path.join(tmp, 'corpus');
const PAGES: Record<string, string> = {
  'a.md': 'alpha page about streams',
  'b.md': 'bravo page about vectors',
  'c.md': 'charlie page about groups',
};
const prefixes: string[] = [];
let redis: Redis;

function newPrefix(tag: string): string {
  const p = randomPrefix(tag);
  prefixes.push(p);
  return p;
}

beforeAll(() => {
  redis = redisClient();
  fs.mkdirSync(corpus);
  for (const [name, text] of Object.entries(PAGES)) fs.writeFileSync(path.join(corpus, name), text);
});
afterAll(async () => {
  await stopAllWorkers();
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function keysMatching(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

/** A key prefix served by one in-process worker for the enclosing describe block. */
function withWorker(tag: string) {
  const prefix = newPrefix(tag);
  beforeAll(async () => {
    await startTestWorker(prefix, { MODELS });
  });
  afterAll(stopAllWorkers);
  return { prefix, k: keys(prefix), env: { KEY_PREFIX: prefix } };
}

describe('submit', () => {
  const { prefix, k, env } = withWorker('clisub');

  it('without --wait prints an id per page and where the results go', async () => {
    const r = await runCli(['submit', '-m', 'fx', 'hello', 'world'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^\d+-\d+\tcli\/arg-0$/),
      expect.stringMatching(/^\d+-\d+\tcli\/arg-1$/),
    ]);
    expect(r.stderr).toContain(
      `submitted 2 entries to ${k.request('fx')}; results go to ${k.results()}`,
    );
  });

  it('--wait reports the results and deletes its private reply stream', async () => {
    const r = await runCli(['submit', '-m', 'fx', '--wait', 'one', 'two'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^2 ok in /m);
    // Under the source (the default pattern binds replies to it): `-s` defaults to `cli`.
    expect(r.stderr).toContain(`results go to ${prefix}:reply:cli/cli-`);
    expect(await keysMatching(`${prefix}:reply:*cli-*`)).toEqual([]);
  });

  it('refuses a model no worker serves at once, even with --wait, adding nothing', async () => {
    const r = await runCli(['submit', '-m', 'nosuch', '--wait', 'x'], env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).toMatch(/no worker serves model "nosuch".*MODELS.*--force/);
    expect(await redis.exists(k.request('nosuch'))).toBe(0);
  });

  it('refuses a --reply-to the fleet would deny, naming the pattern', async () => {
    const before = await redis.xlen(k.request('fx'));
    const r = await runCli(['submit', '-m', 'fx', '--reply-to', 'myresults', '--wait', 'x'], env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(
      `--reply-to myresults does not match the pattern the fleet accepts (${prefix}:reply:{source}/*)`,
    );
    expect(r.stderr).toMatch(/reply_to_denied/);
    expect(await redis.xlen(k.request('fx'))).toBe(before);
  });

  it('warns, and queues, when the model has a group but no worker read it lately', async () => {
    await redis.xgroup('CREATE', k.request('idle'), k.group, '$', 'MKSTREAM');
    const r = await runCli(['submit', '-m', 'idle', 'x'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /warning: no worker has read .*req:idle in the last 60 s \(no worker has joined\)/,
    );
    expect(await redis.xlen(k.request('idle'))).toBe(1);
  });
});

describe('backfill and dlq replay', () => {
  const { k, env } = withWorker('clibf');

  it('a finished backfill prints its elapsed time and rate', async () => {
    const r = await runCli(['backfill', corpus, '-m', 'fx', '--wait'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/3\/3 answered in all \(\d+\.\d s, \d+\.\d pages\/s answered\)/);
  });

  it('dlq replay skips entries that can only fail again, unless --force', async () => {
    // No text: dead-lettered as invalid.
    await redis.xadd(k.request('fx'), '*', 'id', 'bad', 'source', 'docs');
    await until('dead-lettered', async () => (await redis.xlen(k.dlq('fx'))) === 1);
    const skipped = await runCli(['dlq', 'replay', '-m', 'fx'], env);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout).toMatch(
      /skipped .*dead-lettered as invalid: the same fields would fail again/,
    );
    expect(skipped.stdout).toMatch(/replayed 0, skipped 1/);
    expect(await redis.xlen(k.dlq('fx'))).toBe(1);
    const forced = await runCli(['dlq', 'replay', '-m', 'fx', '--force'], env);
    expect(forced.stdout).toMatch(/replayed 1, skipped 0/);
  });
});

/** Backfill the corpus through a worker writing to `sink`, then search for page b's own text. */
async function expectSearchFinds(env: Record<string, string>): Promise<void> {
  const r = await runCli(['search', '-m', 'fx', PAGES['b.md'] as string], env);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.split('\n')[0]).toBe('0.0000  backfill/b.md#0');
  expect(r.stdout.trim().split('\n')).toHaveLength(3);
  // The query counted nowhere: no progress source is left behind.
  expect(await keysMatching(`${env.KEY_PREFIX}:progress:search*`)).toEqual([]);
}

describe('search', () => {
  afterAll(stopAllWorkers);
  it('finds a backfilled row in a pglite folder, once no worker holds the folder', async () => {
    const prefix = newPrefix('clisrchl');
    const dir = path.join(tmp, 'pglite');
    const env = { KEY_PREFIX: prefix, SINK: `pglite:${dir}` };
    const writer = await startTestWorker(prefix, { MODELS, SINK: `pglite:${dir}` });
    const bf = await runCli(['backfill', corpus, '-m', 'fx', '--wait'], { KEY_PREFIX: prefix });
    expect(bf.code, bf.stderr).toBe(0);
    const locked = await runCli(['search', '-m', 'fx', 'x'], env);
    expect(locked.code, locked.stderr).toBe(2);
    expect(locked.stderr).toMatch(
      /is in use by process \d+.*stop that process first, or use PG_URL/,
    );
    await stopTestWorker(writer);
    // A worker without the sink embeds the query; search opens the folder itself.
    await startTestWorker(prefix, { MODELS });
    await expectSearchFinds(env);
  });

  describe('over Postgres (pgvector on the wire)', () => {
    let server: PgliteServer;
    beforeAll(async () => {
      server = await startPgliteServer();
    }, 120_000);
    afterAll(async () => {
      await stopAllWorkers(); // before the server goes, or they log its loss
      await server.stop();
      fs.rmSync(server.dataDir, { recursive: true, force: true });
    });

    it('finds a backfilled row beside the running worker', async () => {
      const prefix = newPrefix('clisrchpg');
      const sink = { PG_URL: server.url, SINK_TABLE_PREFIX: `${prefix.replace(/-/g, '_')}_` };
      await startTestWorker(prefix, { MODELS, ...sink });
      const bf = await runCli(['backfill', corpus, '-m', 'fx', '--wait'], { KEY_PREFIX: prefix });
      expect(bf.code, bf.stderr).toBe(0);
      await expectSearchFinds({ KEY_PREFIX: prefix, ...sink });
      const json = await runCli(
        ['search', '-m', 'fx', '--json', '-k', '1', PAGES['c.md'] as string],
        {
          KEY_PREFIX: prefix,
          ...sink,
        },
      );
      expect(JSON.parse(json.stdout)).toMatchObject([
        { source: 'backfill', id: 'c.md', chunk: 0, distance: 0 },
      ]);
    });

    it("prints each hit's [start, end) and its stored passage; --json carries both", async () => {
      const prefix = newPrefix('clisrchsp');
      const tablePrefix = `${prefix.replace(/-/g, '_')}_`;
      const env = { KEY_PREFIX: prefix, PG_URL: server.url, SINK_TABLE_PREFIX: tablePrefix };
      await startTestWorker(prefix, { MODELS, PG_URL: server.url, SINK_TABLE_PREFIX: tablePrefix });
      // Rows as a chunking worker stores them: the query's own vector (the fixture core's)
      // on chunk 1 with its passage, and chunk 0 stored without one (passages off then).
      const query = 'how do pages travel';
      const vectorOf = (text: string) => {
        const v = new Float32Array(8);
        fill(v, text);
        return v;
      };
      const sink = createSink({
        pgUrl: server.url,
        pgPoolSize: 1,
        sinkTablePrefix: tablePrefix,
        sinkIndex: 'none',
      });
      try {
        await sink!.openTable('fx'); // the worker created it
        await sink!.upsert('fx', [
          {
            source: 'docs',
            id: 'guide',
            chunk: 0,
            hash: 'h0',
            vector: vectorOf('intro'),
            span: [0, 25],
          },
          {
            source: 'docs',
            id: 'guide',
            chunk: 1,
            hash: 'h1',
            vector: vectorOf(query),
            span: [25, 52],
            passage: 'Pages travel\nas envelopes 🙂.',
          },
        ]);
      } finally {
        await sink?.close();
      }
      const r = await runCli(['search', '-m', 'fx', '-k', '2', query], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trimEnd().split('\n')).toEqual([
        '0.0000  docs/guide#1  [25, 52)',
        '        Pages travel as envelopes 🙂.',
        expect.stringMatching(/^\d\.\d{4} {2}docs\/guide#0 {2}\[0, 25\)$/),
      ]);
      const json = await runCli(['search', '-m', 'fx', '--json', '-k', '2', query], env);
      expect(JSON.parse(json.stdout)).toEqual([
        {
          source: 'docs',
          id: 'guide',
          chunk: 1,
          distance: 0,
          meta: null,
          span: [25, 52],
          passage: 'Pages travel\nas envelopes 🙂.',
        },
        expect.objectContaining({ id: 'guide', chunk: 0, span: [0, 25] }),
      ]);
      expect(JSON.parse(json.stdout)[1]).not.toHaveProperty('passage');
    });
  });
});

describe('worker logs for people', () => {
  it('pretty lines, a summary line of work, the port and sink, and no per-stream trim lines', async () => {
    const prefix = newPrefix('clilog');
    const k = keys(prefix);
    const w = spawnWorker(prefix, {
      MODELS,
      LOG_FORMAT: 'pretty',
      LOG_LEVEL: 'info',
      LOG_SUMMARY_S: 1,
      TRIM_INTERVAL_MS: 200,
    });
    try {
      await until('reading', () => w.output().includes('worker reading'), 30_000);
      const client = new StreambedClient({ redis, prefix });
      const pages = Array.from({ length: 20 }, (_, i) => ({
        id: `p${i}`,
        source: 'docs',
        text: `page ${i}`,
      }));
      await client.submit(pages, { model: 'fx' });
      await until('summary', () =>
        /answered \d+ entries in \d+ s \([\d.]+\/s\), holding \d+/.test(w.output()),
      );
      await until('trimmed', async () => (await redis.xlen(k.request('fx'))) <= 1);
      await new Promise((r) => setTimeout(r, 500)); // a trim pass or two after the trim itself
      const lines = w.output().trim().split('\n');
      for (const line of lines) expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} (INFO|WARN) /);
      expect(w.output()).toMatch(
        /INFO {2}worker serving metricsPort=off sink="none \(streams only\)"/,
      );
      expect(w.output()).not.toContain('trimmed acknowledged history');
      expect(w.output()).not.toContain('page 1');
    } finally {
      w.proc.kill('SIGKILL');
      await w.exited;
    }
  });
});
