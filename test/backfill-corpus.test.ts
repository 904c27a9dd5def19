/**
 * The backfill input as a stream (no Redis): pages come in a stable order
 * with contiguous indexes, the count pass agrees with the read, and a JSONL
 * line is parsed only when its page is needed, so a malformed line fails the
 * run when it is reached, naming its line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { type CorpusPage, countPages, readCorpus } from '../src/backfill/corpus.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-corpus-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function all(input: string): Promise<CorpusPage[]> {
  const out: CorpusPage[] = [];
  for await (const p of readCorpus(input, 'dflt')) out.push(p);
  return out;
}

describe('backfill corpus', () => {
  it('reads a JSONL file in order, skipping blank lines, across read chunks', async () => {
    const file = path.join(dir, 'pages.jsonl');
    // Lines longer than a read chunk (256 KiB) and a last line without '\n'.
    const big = 'x'.repeat(300_000);
    const rows = [
      JSON.stringify({ id: 'a', text: 'one' }),
      '   ',
      JSON.stringify({ id: 'b', source: 'other', texts: [big, 'two'] }),
      '',
      JSON.stringify({ id: 'c', text: 'three', meta: { n: 1 } }),
    ];
    fs.writeFileSync(file, rows.join('\n'));
    expect(await countPages(file)).toBe(3);
    const pages = await all(file);
    expect(pages.map((p) => [p.index, p.key()])).toEqual([
      [0, 'dflt/a'],
      [1, 'other/b'],
      [2, 'dflt/c'],
    ]);
    expect((await pages[1]?.load())?.texts?.[0]).toHaveLength(300_000);
    expect(await pages[2]?.load()).toEqual({
      id: 'c',
      source: 'dflt',
      text: 'three',
      meta: { n: 1 },
    });
  });

  it('parses a line only when its page is needed', async () => {
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, `${JSON.stringify({ id: 'a', text: 'ok' })}\n{not json\n`);
    const pages = await all(file);
    expect(pages).toHaveLength(2);
    expect(pages[0]?.key()).toBe('dflt/a');
    expect(() => pages[1]?.key()).toThrow(/bad\.jsonl:2: not JSON/);
  });

  it('walks a directory in name order, one directory at a time', async () => {
    const root = path.join(dir, 'tree');
    for (const f of ['b.txt', 'a/z.md', 'a/c/y.txt', 'skip.json', 'c.markdown'])
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    for (const f of ['b.txt', 'a/z.md', 'a/c/y.txt', 'skip.json', 'c.markdown'])
      fs.writeFileSync(path.join(root, f), `text of ${f}`);
    expect(await countPages(root)).toBe(4);
    const pages = await all(root);
    expect(pages.map((p) => p.key())).toEqual([
      'dflt/a/c/y.txt',
      'dflt/a/z.md',
      'dflt/b.txt',
      'dflt/c.markdown',
    ]);
    expect(pages.map((p) => p.index)).toEqual([0, 1, 2, 3]);
    expect(await pages[1]?.load()).toEqual({
      id: 'a/z.md',
      source: 'dflt',
      text: 'text of a/z.md',
    });
  });
});
