/**
 * A JSONL page line (`submit --jsonl`, `backfill`) may ask for its own
 * chunking (`chunk`, `page_vector`); `--chunk` applies to the text pages
 * that do not. Parsing is checked here; the backfill case runs the CLI
 * against a real worker with the generated tiny model and reads the spans
 * each page was answered with.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { readPages } from '../src/cli/pages-input.js';
import { parsePageLine, withChunkDefault } from '../src/codec/page-line.js';
import { runCli } from './helpers/cli.js';
import { tinyModel } from './helpers/models.js';
import { deletePrefix, randomPrefix, redisClient } from './helpers/redis.js';
import { readResults } from './helpers/results.js';
import { startTestWorker, stopAllWorkers } from './helpers/worker.js';

const redis = redisClient();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-page-line-'));
const prefixes: string[] = [];

afterAll(async () => {
  await stopAllWorkers();
  for (const p of prefixes) await deletePrefix(redis, p);
  redis.disconnect();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a JSONL page line', () => {
  it('carries chunk and page_vector, and says which line is wrong and why', () => {
    const line = (o: object) => parsePageLine(JSON.stringify(o), 'dflt', 'f.jsonl:3');
    expect(line({ id: 'a', text: 'x', chunk: true, page_vector: true })).toEqual({
      id: 'a',
      source: 'dflt',
      text: 'x',
      chunk: true,
      pageVector: true,
    });
    expect(line({ id: 'b', source: 's', text: 'x', chunk: { window: 64, overlap: 8 } })).toEqual({
      id: 'b',
      source: 's',
      text: 'x',
      chunk: { window: 64, overlap: 8 },
    });
    expect(line({ id: 'c', text: 'x', chunk: false }).chunk).toBe(false);
    for (const [bad, why] of [
      [{ id: 'd', text: 'x', chunk: 'yes' }, /f\.jsonl:3: "chunk" must be true, false or/],
      [{ id: 'd', text: 'x', chunk: { size: 64 } }, /"chunk" must be/],
      [{ id: 'd', text: 'x', chunk: { window: 1.5 } }, /"chunk" must be/],
      [{ id: 'd', text: 'x', page_vector: 'yes' }, /f\.jsonl:3: "page_vector" must be true or/],
      [{ id: 'd', source: 'no spaces', text: 'x' }, /f\.jsonl:3: source must be/],
      [{ text: 'x' }, /f\.jsonl:3: needs a string "id"/],
      // The envelope's own rules, so a line the worker would refuse stops the run here.
      [{ id: 'a\u0000b', text: 'x' }, /f\.jsonl:3: id must not contain U\+0000/],
      [{ id: 'd', text: 'x', chunk: { window: 16, overlap: 8 } }, /"chunk" must be/],
      [{ id: 'd', text: 'x', chunk: { window: 4 } }, /window at least 8/],
    ] as const)
      expect(() => line(bad)).toThrow(why);
    expect(() => parsePageLine('{nope', 's', 'f.jsonl:9')).toThrow(/f\.jsonl:9: not JSON/);
  });

  it("--chunk fills in only the text pages that say nothing; a line's own chunk wins", async () => {
    const file = path.join(tmp, 'pages.jsonl');
    fs.writeFileSync(
      file,
      [
        { id: 'own', text: 'a', chunk: false },
        { id: 'plain', text: 'b' },
        { id: 'texts', texts: ['c', 'd'] },
      ]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    );
    const pages = await readPages({ texts: [], files: [], jsonl: [file], source: 's' });
    const chunked = pages.map((p) => withChunkDefault(p, { window: 32 }).chunk);
    expect(chunked).toEqual([false, { window: 32 }, undefined]);
  });

  it('backfill chunks each page as its line or --chunk says, answered with its spans', async () => {
    const model = await tinyModel();
    const prefix = randomPrefix('pageline');
    prefixes.push(prefix);
    await startTestWorker(prefix, { MODELS: `tiny=${model.dir};dtype=fp32` });
    // ~200 tokens of the tiny model's WordPiece: several windows of 32, fewer of 96.
    const page = Array.from(
      { length: 120 },
      (_, i) => `word${i % 7} ${i % 5 === 4 ? 'end.' : ''}`,
    ).join(' ');
    const file = path.join(tmp, 'corpus.jsonl');
    fs.writeFileSync(
      file,
      [
        { id: 'default', text: page },
        { id: 'wide', text: page, chunk: { window: 96, overlap: 8 } },
        { id: 'whole', text: page, chunk: false },
        { id: 'mean', text: page, page_vector: true },
      ]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    );
    const run = await runCli(
      ['backfill', file, '-m', 'tiny', '--job', 'lines', '--wait', '--chunk', '32'],
      { KEY_PREFIX: prefix },
    );
    expect(run.code, run.stderr).toBe(0);
    const reply = `${prefix}:reply:backfill/backfill:lines`;
    const byId = new Map((await readResults(redis, reply)).map((r) => [r.id, r]));
    const ok = (id: string) => {
      const r = byId.get(id);
      if (r?.status !== 'ok') throw new Error(`${id}: ${JSON.stringify(r)}`);
      return r.res;
    };
    const narrow = ok('default').spans ?? [];
    const wide = ok('wide').spans ?? [];
    expect(narrow.length).toBeGreaterThan(wide.length);
    expect(wide.length).toBeGreaterThan(1);
    expect(ok('default').vectors).toHaveLength(narrow.length);
    expect(ok('whole').spans).toBeUndefined();
    expect(ok('whole').vectors).toHaveLength(1);
    expect(ok('mean').spans).toEqual(narrow);
    expect(ok('mean').pageVector).toHaveLength(ok('mean').dim);
  }, 120_000);
});
