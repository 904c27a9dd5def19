/** Fixed-width text columns for the status report: 80 columns, long names cut with an ellipsis. */
import { count } from './format.js';

export const WIDTH = 80;
/** Width of the first (name) column. */
export const NAME = 18;

/** Cells as [text, width]: negative width pads right (left-aligned), positive pads left. */
export function row(cells: Array<[string, number]>): string {
  return clip(
    cells
      .map(([text, w], i) => {
        const s = i === 0 ? text : ` ${text}`;
        const width = Math.abs(w) + (i === 0 ? 0 : 1);
        return w < 0 ? s.padEnd(width) : s.padStart(width);
      })
      .join('')
      .trimEnd(),
  );
}

export function clip(line: string): string {
  return line.length <= WIDTH ? line : `${line.slice(0, WIDTH - 1)}…`;
}

export function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

export function rate(r: number | null): string {
  if (r === null) return '-';
  return r >= 1000 ? count(Math.round(r)) : r.toFixed(1);
}
