/**
 * One line of a JSONL corpus, as `streambed submit --jsonl` and `streambed
 * backfill` read it: `{id, source?, text | texts, meta?, chunk?,
 * page_vector?}`. Checked here, with the file and line in the error, rather
 * than by the worker after the page was queued: a page's key must come back
 * intact in its result, and a typo in a field should stop the run, not
 * dead-letter the page. The worker validates the envelope again (the
 * chunk's window and overlap against the model).
 */
import { StreambedError } from '../errors.js';
import { SOURCE_NAME } from '../keys.js';
import type { ChunkRequest, Page } from '../types.js';

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
  const chunk = chunkOf(row.chunk, where);
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

export function checkId(id: string, where: string): void {
  const bytes = Buffer.byteLength(id);
  if (bytes < 1 || bytes > 256) throw invalid(where, 'id must be 1-256 bytes');
}

export function checkSource(source: string, where: string): void {
  if (!SOURCE_NAME.test(source))
    throw invalid(where, 'source must be 1-128 chars of [A-Za-z0-9._:-]');
}

/** A default chunking (`--chunk`) for the text pages that do not say their own. */
export function withChunkDefault(page: Page, chunk: ChunkRequest | undefined): Page {
  return chunk === undefined || page.text === undefined || page.chunk !== undefined
    ? page
    : { ...page, chunk };
}

function chunkOf(value: unknown, where: string): ChunkRequest | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  const isMap = typeof value === 'object' && value !== null && !Array.isArray(value);
  const fields = isMap ? Object.entries(value as Record<string, unknown>) : [];
  if (isMap && fields.every(([k, v]) => (k === 'window' || k === 'overlap') && Number.isInteger(v)))
    return value as ChunkRequest;
  throw invalid(where, '"chunk" must be true, false or {"window": N, "overlap": N}');
}

function invalid(where: string, why: string): StreambedError {
  return new StreambedError('invalid', `${where}: ${why}`);
}
