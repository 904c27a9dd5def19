/**
 * The human form of a status report: fixed columns that fit an 80-column
 * terminal, compact numbers (12.3k) and durations (3m12s), long names cut
 * with an ellipsis. Consumers are listed only where they hold entries.
 */
import { count, duration } from './format.js';
import type { ConsumerStatus, LaneStatus, StatusReport } from './report.js';

export const WIDTH = 80;
const NAME = 18;

export function renderText(r: StatusReport): string {
  const lines: string[] = [];
  const when = new Date(r.generatedAtMs).toISOString().replace('T', ' ').slice(0, 19);
  const rates = r.rateWindowMs === null ? 'no rates' : `rates over ${duration(r.rateWindowMs)}`;
  lines.push(clip(`streambed status  ${r.prefix} / ${r.group}  ${when}Z  ${rates}`));
  lines.push('');
  if (r.models.length === 0) {
    lines.push(`no request streams under prefix ${r.prefix} (start a worker or pass --models)`);
  } else {
    lines.push(
      row([
        ['STREAM', -NAME],
        ['LENGTH', 8],
        ['LAG', 8],
        ['PEND', 8],
        ['OLDEST', 8],
        ['CONS', 6],
        ['RATE/s', 9],
        ['DLQ', 8],
      ]),
    );
    for (const m of r.models) {
      for (const l of m.lanes) {
        const name = l.lane === 'bulk' ? `${m.model} (bulk)` : m.model;
        lines.push(laneRow(name, l, l.lane === 'interactive' ? count(m.dlqLength) : ''));
        lines.push(...consumerRows(l.consumers));
      }
    }
  }
  lines.push('');
  if (r.sources.length === 0) {
    lines.push('no progress counters yet (sources appear once the SDK submits)');
  } else {
    lines.push(
      row([
        ['SOURCE', -NAME],
        ['DONE/TOTAL', 13],
        ['%', 6],
        ['FAIL', 6],
        ['RATE/s', 7],
        ['ETA', 6],
        ['LAST', 6],
        ['STATE', -7],
      ]),
    );
    for (const s of r.sources) {
      const total = s.submitted > 0 ? count(s.submitted) : '?';
      lines.push(
        row([
          [cut(s.source, NAME), -NAME],
          [`${count(s.done + s.failed + s.deduped)}/${total}`, 13],
          [s.percent === null ? '-' : s.percent.toFixed(1), 6],
          [count(s.failed), 6],
          [rate(s.ratePerSec), 7],
          [s.etaSec === null ? '-' : duration(s.etaSec * 1000), 6],
          [s.lastDoneAgeMs === null ? 'never' : duration(s.lastDoneAgeMs), 6],
          [s.state, -7],
        ]),
      );
    }
  }
  if (r.breaches.length > 0) {
    lines.push('', `BREACHED (${r.breaches.length})`);
    for (const b of r.breaches) lines.push(clip(`  ${b.kind}: ${b.message}`));
  }
  return lines.join('\n');
}

function laneRow(name: string, l: LaneStatus, dlq: string): string {
  const noGroup = !l.groupExists;
  return row([
    [cut(name, NAME), -NAME],
    [l.exists ? count(l.length) : '-', 8],
    [noGroup || l.lag === null ? '-' : count(l.lag), 8],
    [noGroup ? '-' : count(l.pending), 8],
    [l.oldestPending ? duration(l.oldestPending.idleMs) : '-', 8],
    [noGroup ? '-' : String(l.consumers.length), 6],
    [rate(l.ratePerSec), 9],
    [dlq, 8],
  ]);
}

function consumerRows(consumers: ConsumerStatus[]): string[] {
  const busy = consumers.filter((c) => c.pending > 0);
  if (busy.length === 0) return [];
  const out = [
    row([
      ['  consumer', -44],
      ['PEND', 8],
      ['IDLE', 10],
      ['OLDEST', 10],
    ]),
  ];
  for (const c of busy) {
    out.push(
      row([
        [`  ${cut(c.name, 42)}`, -44],
        [count(c.pending), 8],
        [duration(c.idleMs), 10],
        [c.oldestPending ? duration(c.oldestPending.idleMs) : '-', 10],
      ]),
    );
  }
  const quiet = consumers.length - busy.length;
  if (quiet > 0) out.push(`  + ${quiet} consumer${quiet === 1 ? '' : 's'} with nothing pending`);
  return out;
}

/** Cells as [text, width]: negative width pads right (left-aligned), positive pads left. */
function row(cells: Array<[string, number]>): string {
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

function clip(line: string): string {
  return line.length <= WIDTH ? line : `${line.slice(0, WIDTH - 1)}…`;
}

function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

function rate(r: number | null): string {
  if (r === null) return '-';
  return r >= 1000 ? count(Math.round(r)) : r.toFixed(1);
}
