/**
 * One line of a JSONL corpus, as `streambed submit --jsonl` and `streambed
 * backfill` read it: `{id, source?, text | texts, meta?, chunk?,
 * page_vector?}`. Checked here, with the file and line in the error, rather
 * than by the worker after the page was queued: a page's key must come back
 * intact in its result, and a typo in a field should stop the run, not
 * dead-letter the page. The worker validates the envelope again (the
 * chunk's window and overlap against the model).
 */
import type { z } from 'zod';

import { StreambedError } from '../errors.js';
import { MIN_CHUNK_WINDOW } from '../models/chunk-options.js';
import type { ChunkRequest, Page } from '../types.js';
import { chunkSchema, idSchema, sourceSchema } from './envelope.js';

/** What a `chunk` may be, said the same way wherever one is refused. */
export const CHUNK_RULE = `"chunk" must be true, false or {"window": N, "overlap": N} (window at least ${MIN_CHUNK_WINDOW}, overlap under half of it)`;

export function parsePageLine(line: string, defaultSource: string, where: string): Page {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(line) as Record<string, unknown>;
  } catch (err) {
    throw invalid(where, `not JSON (${(err as Error).message})`);
  }
  if (typeof row.id !== 'string' || (typeof row.text !== 'string' && !Array.isArray(row.texts)))
    throw invalid(where, 'needs a string "id" and "text" (or "texts")');
  const source = typeof row.source === 'string' ? row.source : defaultSource;
  checkId(row.id, where);
  checkSource(source, where);
  const chunk =
    row.chunk === undefined ? undefined : checked(chunkSchema, row.chunk, where, CHUNK_RULE);
  if (row.page_vector !== undefined && typeof row.page_vector !== 'boolean')
    throw invalid(where, '"page_vector" must be true or false');
  return {
    id: row.id,
    source,
    ...(typeof row.text === 'string' ? { text: row.text } : { texts: row.texts as string[] }),
    ...(row.meta !== undefined && { meta: row.meta as Record<string, unknown> }),
    ...(chunk !== undefined && { chunk }),
    ...(row.page_vector === true && { pageVector: true }),
  };
}

/** The envelope's own id rule (1-256 bytes, no U+0000), with the file and line in the error. */
export function checkId(id: string, where: string): void {
  checked(idSchema, id, where);
}

export function checkSource(source: string, where: string): void {
  checked(sourceSchema, source, where);
}

/** A default chunking (`--chunk`) for the text pages that do not say their own. */
export function withChunkDefault(page: Page, chunk: ChunkRequest | undefined): Page {
  return chunk === undefined || page.text === undefined || page.chunk !== undefined
    ? page
    : { ...page, chunk };
}

/** `value` as `schema` has it, or an `invalid` error naming `where` and the rule (or `message`). */
export function checked<T>(
  schema: z.ZodType<T>,
  value: unknown,
  where: string,
  message?: string,
): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw invalid(where, message ?? r.error.issues[0]?.message ?? 'invalid');
}

function invalid(where: string, why: string): StreambedError {
  return new StreambedError('invalid', `${where}: ${why}`);
}
