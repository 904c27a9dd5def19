/**
 * What `streambed backfill` embeds: a directory of .txt/.md files (id = the
 * path relative to the directory, one page each) or a JSONL file of
 * `{id, source?, text | texts, meta?}`. Listing keeps only ids and where to
 * find each page; texts are read when a page is submitted, so a corpus of
 * hundreds of thousands of pages costs its ids in memory, not its text.
 */
import fs from 'node:fs';
import path from 'node:path';

import { pageKey } from '../client/client.js';
import { StreambedError } from '../errors.js';
import type { Page } from '../types.js';

export interface CorpusPage {
  /** `source/id`: the page's identity in the job's submitted set and results. */
  key: string;
  id: string;
  source: string;
  load(): Promise<Page>;
}

const TEXT_FILE = /\.(txt|md|markdown)$/i;
const SOURCE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/** List a directory or JSONL corpus, in a stable order; throws on an invalid or repeated page. */
export async function listCorpus(input: string, defaultSource: string): Promise<CorpusPage[]> {
  const stat = await fs.promises.stat(input).catch(() => undefined);
  if (!stat) throw new StreambedError('invalid', `${input}: no such file or directory`);
  const pages = stat.isDirectory()
    ? await listDirectory(input, defaultSource)
    : await listJsonl(input, defaultSource);
  const seen = new Set<string>();
  for (const p of pages) {
    if (seen.has(p.key))
      throw new StreambedError('invalid', `${input}: page ${p.key} appears twice`);
    seen.add(p.key);
  }
  return pages;
}

async function listDirectory(dir: string, source: string): Promise<CorpusPage[]> {
  checkSource(source, dir);
  const entries = await fs.promises.readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && TEXT_FILE.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
  return files.map((file) => {
    const id = path.relative(dir, file).split(path.sep).join('/');
    checkId(id, file);
    return {
      key: pageKey({ source, id }),
      id,
      source,
      load: async () => ({ id, source, text: await fs.promises.readFile(file, 'utf8') }),
    };
  });
}

/** One pass for ids and byte ranges; each page's line is read again when it is submitted. */
async function listJsonl(file: string, defaultSource: string): Promise<CorpusPage[]> {
  const pages: CorpusPage[] = [];
  let offset = 0;
  let lineNo = 0;
  let rest = Buffer.alloc(0);
  const onLine = (line: Buffer, start: number) => {
    lineNo++;
    const text = line.toString('utf8');
    if (!text.trim()) return;
    const page = parseLine(text, defaultSource, `${file}:${lineNo}`);
    const { id, source } = page;
    const where = `${file}:${lineNo}`;
    const length = line.length;
    pages.push({
      key: pageKey(page),
      id,
      source,
      load: async () => {
        const handle = await fs.promises.open(file, 'r');
        try {
          const buf = Buffer.alloc(length);
          await handle.read(buf, 0, length, start);
          return parseLine(buf.toString('utf8'), defaultSource, where);
        } finally {
          await handle.close();
        }
      },
    });
  };
  for await (const chunk of fs.createReadStream(file)) {
    let data = Buffer.concat([rest, chunk as Buffer]);
    let base = offset - rest.length;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
      onLine(data.subarray(0, nl), base);
      base += nl + 1;
      data = data.subarray(nl + 1);
    }
    offset += (chunk as Buffer).length;
    rest = Buffer.from(data);
  }
  if (rest.length > 0) onLine(rest, offset - rest.length);
  return pages;
}

function parseLine(line: string, defaultSource: string, where: string): Page {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(line) as Record<string, unknown>;
  } catch (err) {
    throw new StreambedError('invalid', `${where}: not JSON (${(err as Error).message})`);
  }
  if (typeof row.id !== 'string' || (typeof row.text !== 'string' && !Array.isArray(row.texts)))
    throw new StreambedError('invalid', `${where}: needs a string "id" and "text" (or "texts")`);
  const source = typeof row.source === 'string' ? row.source : defaultSource;
  checkId(row.id, where);
  checkSource(source, where);
  return {
    id: row.id,
    source,
    ...(typeof row.text === 'string' ? { text: row.text } : { texts: row.texts as string[] }),
    ...(row.meta !== undefined && { meta: row.meta as Record<string, unknown> }),
  };
}

// Checked here, not only by the worker: a page's key must come back intact in its result.
function checkId(id: string, where: string): void {
  const bytes = Buffer.byteLength(id);
  if (bytes < 1 || bytes > 256)
    throw new StreambedError('invalid', `${where}: id must be 1-256 bytes`);
}

function checkSource(source: string, where: string): void {
  if (!SOURCE_NAME.test(source))
    throw new StreambedError('invalid', `${where}: source must be 1-128 chars of [A-Za-z0-9._:-]`);
}
