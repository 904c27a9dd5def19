/**
 * LOG_FORMAT=pretty: pino's JSON lines rewritten for a person at a terminal,
 * `12:04:05.123 INFO  model loaded model=tiny dim=64`. No worker thread and
 * no dependency (pino-pretty would add both); JSON stays the default off a TTY.
 */
import { EOL } from 'node:os';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const COLOURS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
/** Fields every line carries that a person at one terminal does not need repeated. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'consumer', 'group']);

export function formatPrettyLine(json: string, colour: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json; // not one of pino's lines: pass it through untouched
  }
  const level = Number(rec.level);
  const time = new Date(Number(rec.time)).toISOString().slice(11, 23);
  let name = (LEVELS[level] ?? String(level)).padEnd(5);
  if (colour && COLOURS[level]) name = `${COLOURS[level]}${name}\x1b[0m`;
  const rest = Object.entries(rec)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  return [time, name, String(rec.msg ?? ''), ...rest].join(' ').trimEnd() + EOL;
}

/** A pino destination that writes pretty lines to `out` (stdout by default). */
export function prettyDestination(out: NodeJS.WriteStream = process.stdout): {
  write(line: string): void;
} {
  const colour = out.isTTY === true;
  return { write: (line) => void out.write(formatPrettyLine(line, colour)) };
}
