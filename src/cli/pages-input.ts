/**
 * Where `submit` gets its pages: texts given as arguments, text/markdown
 * files (id = the path), or JSONL lines `{id, source?, text | texts, meta?,
 * chunk?, page_vector?}` (page-line.ts).
 */
import fs from 'node:fs';
import readline from 'node:readline';

import { parsePageLine } from '../codec/page-line.js';
import { StreambedError } from '../errors.js';
import type { Page } from '../types.js';

export async function readPages(opts: {
  texts: string[];
  files: string[];
  jsonl: string[];
  source: string;
}): Promise<Page[]> {
  const pages: Page[] = opts.texts.map((text, i) => ({
    id: `arg-${i}`,
    source: opts.source,
    text,
  }));
  for (const file of [...opts.files, ...opts.jsonl]) checkFile(file);
  for (const file of opts.files)
    pages.push({ id: file, source: opts.source, text: fs.readFileSync(file, 'utf8') });
  for (const file of opts.jsonl) pages.push(...(await readJsonl(file, opts.source)));
  return pages;
}

/** Every input path up front, so a typo is reported before anything is sent. */
function checkFile(file: string): void {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new StreambedError('config', `${file}: no such file`);
  if (stat.isDirectory())
    throw new StreambedError(
      'config',
      `${file} is a directory: give files here, or use \`streambed backfill ${file}\` for a directory of pages`,
    );
}

async function readJsonl(file: string, source: string): Promise<Page[]> {
  const out: Page[] = [];
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim()) out.push(parsePageLine(line, source, `${file}:${n}`));
  }
  return out;
}
