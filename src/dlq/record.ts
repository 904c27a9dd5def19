/**
 * Reading DLQ records. A record (worker/result-writer.ts `dlqRecord`) is the
 * original request fields untouched, followed by a trailer that starts with
 * `reason`: reason, message, deliveries, stream, rid, consumer, failed_ms.
 * The summary built here carries routing and diagnosis only, never the text.
 */
import { unpack } from 'msgpackr';

export interface DlqRecord {
  /** DLQ stream key and the entry's id in it. */
  dlqStream: string;
  dlqId: string;
  model: string;
  /** The request fields as they were submitted (may hold page text: never print them). */
  original: Buffer[];
  /** Trailer, or undefined when this is not a streambed DLQ record. */
  reason?: string;
  message?: string;
  deliveries?: number;
  /** Request stream the entry was read from, and its entry id there. */
  stream?: string;
  rid?: string;
  consumer?: string;
  failedMs?: number;
  /** Producer's page id and source, when the original fields carry them. */
  id?: string;
  source?: string;
}

/** What `dlq list` shows: no original fields, hence no page text. */
export type DlqSummary = Omit<DlqRecord, 'original'>;

export function parseRecord(
  dlqStream: string,
  model: string,
  dlqId: string,
  fields: Buffer[],
): DlqRecord {
  // The trailer starts at the last `reason` field name: the original fields come
  // first, and the trailer never repeats `reason`, so an original `reason` stays original.
  let start = -1;
  for (let i = fields.length - 2; i >= 0; i -= 2) {
    if ((fields[i] as Buffer).toString() === 'reason') {
      start = i;
      break;
    }
  }
  const original = start < 0 ? fields : fields.slice(0, start);
  const record: DlqRecord = { dlqStream, dlqId, model, original, ...routing(original) };
  if (start < 0) return record;
  const t = new Map<string, string>();
  for (let i = start; i + 1 < fields.length; i += 2) {
    t.set((fields[i] as Buffer).toString(), (fields[i + 1] as Buffer).toString());
  }
  const num = (v: string | undefined) =>
    v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  const set = <K extends keyof DlqRecord>(k: K, v: DlqRecord[K] | undefined) => {
    if (v !== undefined) record[k] = v;
  };
  set('reason', t.get('reason'));
  set('message', t.get('message'));
  set('deliveries', num(t.get('deliveries')));
  set('stream', t.get('stream'));
  set('rid', t.get('rid'));
  set('consumer', t.get('consumer'));
  set('failedMs', num(t.get('failed_ms')));
  return record;
}

export function summarize(record: DlqRecord): DlqSummary {
  const summary: Partial<DlqRecord> = { ...record };
  delete summary.original;
  return summary as DlqSummary;
}

/** id and source from either wire form; nothing else is decoded or kept. */
function routing(fields: Buffer[]): { id?: string; source?: string } {
  const flat = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    flat.set((fields[i] as Buffer).toString('latin1'), fields[i + 1] as Buffer);
  }
  let id: unknown = flat.get('id')?.toString();
  let source: unknown = flat.get('source')?.toString();
  const env = flat.get('env');
  if (env !== undefined) {
    const value = unpackOrUndefined(env);
    id = value?.id;
    source = value?.source;
  }
  return {
    ...(typeof id === 'string' && { id: printable(id, 256) }),
    ...(typeof source === 'string' && { source: printable(source, 128) }),
  };
}

function unpackOrUndefined(buf: Buffer): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = unpack(buf);
  } catch {
    // Undecodable env (reason `invalid`): the record simply has no id or source to show.
    return undefined;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** Ids come from producers: cap them and keep control characters off the terminal. */
function printable(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return s.slice(0, max).replace(/[\u0000-\u001f\u007f]/g, '?');
}
