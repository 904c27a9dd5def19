/**
 * The page text of one dead letter, for the console's "show text" action:
 * the only place the console decodes an entry's text, and only for the one
 * entry asked for.
 */
import { unpack } from 'msgpackr';

import type { DlqRecord } from '../dlq/record.js';

/** The entry's texts (`text`, or each chunk of `texts`), or null when they cannot be decoded. */
export function dlqTexts(record: DlqRecord): string[] | null {
  const flat = new Map<string, Buffer>();
  for (let i = 0; i + 1 < record.original.length; i += 2)
    flat.set((record.original[i] as Buffer).toString('latin1'), record.original[i + 1] as Buffer);
  const env = flat.get('env');
  if (env === undefined) {
    const text = flat.get('text');
    return text === undefined ? null : [text.toString('utf8')];
  }
  let value: unknown;
  try {
    value = unpack(env);
  } catch {
    // An undecodable envelope (dead-lettered `invalid`) has no text to show.
    return null;
  }
  const v = value as { text?: unknown; texts?: unknown } | null;
  if (typeof v?.text === 'string') return [v.text];
  if (Array.isArray(v?.texts) && v.texts.every((t) => typeof t === 'string'))
    return v.texts as string[];
  return null;
}
