/**
 * Finding DLQ records: which DLQ streams exist (one per model), and the
 * records in them that match an operator's filter, oldest first.
 */
import type { Redis } from 'ioredis';

import { isResultErrorCode, RESULT_ERROR_CODES, StreambedError } from '../errors.js';
import type { Keys } from '../keys.js';
import { MODEL_NAME } from '../models/table.js';
import { scanKeys } from '../status/scan.js';
import { type DlqRecord, parseRecord } from './record.js';

export interface DlqFilter {
  model?: string;
  source?: string;
  /** A result error code (`invalid`, `max_deliveries`, ...). */
  reason?: string;
  /** DLQ entry ids. */
  ids?: readonly string[];
  /** Most records returned (default: all). */
  limit?: number;
}

export interface Selection {
  records: DlqRecord[];
  /** More records matched beyond `limit`. */
  more: boolean;
}

const PAGE = 500;
const ENTRY_ID = /^\d+-\d+$/;

/** Reject a malformed filter with a message that names the option. */
export function checkFilter(filter: DlqFilter): void {
  if (filter.model !== undefined && !MODEL_NAME.test(filter.model)) {
    throw new StreambedError('invalid', `--model "${filter.model}" is not a model short name`);
  }
  if (filter.reason !== undefined && !isResultErrorCode(filter.reason)) {
    throw new StreambedError(
      'invalid',
      `--reason "${filter.reason}" is not one of ${RESULT_ERROR_CODES.join(', ')}`,
    );
  }
  const bad = filter.ids?.find((id) => !ENTRY_ID.test(id));
  if (bad !== undefined)
    throw new StreambedError('invalid', `--ids "${bad}" is not a stream entry id`);
  if (filter.limit !== undefined && !(Number.isSafeInteger(filter.limit) && filter.limit > 0)) {
    throw new StreambedError('invalid', '--limit must be a positive integer');
  }
}

/** DLQ streams as {stream, model}: the model's one, or every one under the prefix (SCAN). */
export async function dlqStreams(
  redis: Redis,
  keys: Keys,
  model?: string,
): Promise<Array<{ stream: string; model: string }>> {
  if (model !== undefined) return [{ stream: keys.dlq(model), model }];
  const found = new Set(await scanKeys(redis, keys.dlqPattern(), 'stream'));
  return [...found].sort().flatMap((stream) => {
    const m = keys.dlqModel(stream);
    return m === undefined ? [] : [{ stream, model: m }];
  });
}

/** Records matching `filter`, oldest first within each model's DLQ. */
export async function selectDlq(redis: Redis, keys: Keys, filter: DlqFilter): Promise<Selection> {
  checkFilter(filter);
  const limit = filter.limit ?? Infinity;
  const records: DlqRecord[] = [];
  for (const { stream, model } of await dlqStreams(redis, keys, filter.model)) {
    for await (const record of readStream(redis, stream, model, filter.ids)) {
      if (!matches(record, filter)) continue;
      if (records.length >= limit) return { records, more: true };
      records.push(record);
    }
  }
  return { records, more: false };
}

function matches(r: DlqRecord, f: DlqFilter): boolean {
  return (
    (f.source === undefined || r.source === f.source) &&
    (f.reason === undefined || r.reason === f.reason)
  );
}

type Raw = Array<[Buffer, Buffer[]]>;

async function* readStream(
  redis: Redis,
  stream: string,
  model: string,
  ids?: readonly string[],
): AsyncGenerator<DlqRecord> {
  if (ids) {
    for (const id of new Set(ids)) {
      for (const [rid, fields] of (await redis.xrangeBuffer(stream, id, id)) as Raw)
        yield parseRecord(stream, model, rid.toString(), fields);
    }
    return;
  }
  let from = '-';
  for (;;) {
    const page = (await redis.xrangeBuffer(stream, from, '+', 'COUNT', PAGE)) as Raw;
    for (const [id, fields] of page) yield parseRecord(stream, model, id.toString(), fields);
    const last = page[page.length - 1];
    if (page.length < PAGE || !last) return;
    from = `(${last[0].toString()}`;
  }
}
