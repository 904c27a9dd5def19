/**
 * What `streambed backfill` embeds: a directory of .txt/.md files (id = the
 * path relative to the directory, one page each) or a JSONL file of
 * `{id, source?, text | texts, meta?, chunk?, page_vector?}` (page-line.ts),
 * read as a stream in a stable order
 * (file lines in order; a directory walked one directory at a time, names
 * sorted), so memory does not grow with the corpus. A page's position in
 * that order is its index in the job's checkpoint (state.ts).
 */
import fs from 'node:fs';
import path from 'node:path';

import { pageKey } from '../client/client.js';
import { checkId, checkSource, parsePageLine, withChunkDefault } from '../codec/page-line.js';
import { StreambedError } from '../errors.js';
import type { ChunkRequest, Page } from '../types.js';

export interface CorpusPage {
  /** Position in the input, from 0. */
  index: number;
  /** `source/id`: the page's identity in results (a JSONL line is parsed for it). */
  key(): string;
  load(): Promise<Page>;
}

const TEXT_FILE = /\.(txt|md|markdown)$/i;

export async function checkInput(input: string): Promise<'dir' | 'jsonl'> {
  const stat = await fs.promises.stat(input).catch(() => undefined);
  if (!stat) throw new StreambedError('invalid', `${input}: no such file or directory`);
  return stat.isDirectory() ? 'dir' : 'jsonl';
}

/** How many pages the input holds, without parsing or keeping any (for progress and ETA). */
export async function countPages(input: string): Promise<number> {
  if ((await checkInput(input)) === 'dir') {
    let n = 0;
    for (let it = walk(input); !(await it.next()).done;) n++;
    return n;
  }
  let n = 0;
  await eachLine(input, (line) => {
    if (!isBlank(line)) n++;
  });
  return n;
}

/**
 * The input's pages in order; a malformed one throws when it is reached.
 * `chunk` (`--chunk`): how to chunk the text pages that do not say their own.
 */
export async function* readCorpus(
  input: string,
  defaultSource: string,
  chunk?: ChunkRequest,
): AsyncGenerator<CorpusPage> {
  if ((await checkInput(input)) === 'dir') {
    checkSource(defaultSource, input);
    let index = 0;
    for await (const file of walk(input)) {
      const id = path.relative(input, file).split(path.sep).join('/');
      checkId(id, file);
      const key = pageKey({ source: defaultSource, id });
      yield {
        index: index++,
        key: () => key,
        load: async () =>
          withChunkDefault(
            { id, source: defaultSource, text: await fs.promises.readFile(file, 'utf8') },
            chunk,
          ),
      };
    }
    return;
  }
  let index = 0;
  let lineNo = 0;
  for await (const lines of lineReader(input)) {
    for (const line of lines) {
      lineNo++;
      if (isBlank(line)) continue;
      const where = `${input}:${lineNo}`;
      // Parsed only when needed: a resumed job skips its answered pages by index alone.
      let parsed: Page | undefined;
      const page = () =>
        (parsed ??= withChunkDefault(
          parsePageLine(line.toString('utf8'), defaultSource, where),
          chunk,
        ));
      yield { index: index++, key: () => pageKey(page()), load: async () => page() };
    }
  }
}

/** Files of a directory tree in a stable order: names sorted within each directory. */
async function* walk(dir: string): AsyncGenerator<string> {
  const entries = await fs.promises.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(full);
    else if (e.isFile() && TEXT_FILE.test(e.name)) yield full;
  }
}

/** The file's lines (without '\n'), a read chunk's worth at a time. */
async function* lineReader(file: string): AsyncGenerator<Buffer[]> {
  let rest = Buffer.alloc(0);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 18 })) {
    const data = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    const out: Buffer[] = [];
    let start = 0;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
      // A copy: a view would keep the whole read chunk alive as long as the page.
      out.push(Buffer.from(data.subarray(start, nl)));
      start = nl + 1;
    }
    rest = Buffer.from(data.subarray(start));
    yield out;
  }
  if (rest.length > 0) yield [rest];
}

async function eachLine(file: string, onLine: (line: Buffer) => void): Promise<void> {
  for await (const lines of lineReader(file)) for (const line of lines) onLine(line);
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}
