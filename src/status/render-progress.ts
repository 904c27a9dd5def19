/**
 * The progress tables of the text report: per source (lifetime counters)
 * and per backfill job. OK and FAIL are separate columns (FAIL without the
 * dead letters replayed since, REPLAY, shown once there were replays), and
 * anything finished shows `-` for ETA, never `0ms`.
 */
import { cut, NAME, rate, row } from './columns.js';
import { count, duration } from './format.js';
import type { JobStatus, SourceStatus } from './progress.js';
import type { StatusReport } from './report.js';

export function renderProgress(r: StatusReport): string[] {
  const lines = [''];
  if (r.sources.length === 0) {
    lines.push('no progress counters yet (sources appear once the SDK submits)');
  } else {
    // Only when there were replays: the row fits 80 columns without it.
    const replays = r.sources.some((s) => s.replayed > 0);
    lines.push(
      row([
        ['SOURCE', -NAME],
        ['OK', 8],
        ['FAIL', 6],
        ...replayColumn(replays, 'REPLAY'),
        ['TOTAL', 8],
        ['%', 6],
        ['RATE/s', 7],
        ['ETA', 6],
        ['LAST', 6],
        ['STATE', -7],
      ]),
    );
    lines.push(...r.sources.map((s) => sourceRow(s, replays)));
  }
  if (r.jobs.length > 0) {
    lines.push(
      '',
      row([
        ['JOB', -NAME],
        ['ANSWERED', 8],
        ['SUBMIT', 8],
        ['FAIL', 6],
        ['%', 6],
        ['RATE/s', 7],
        ['ETA', 6],
        ['RAN', 6],
        ['STATE', -7],
      ]),
    );
    lines.push(...r.jobs.map((j) => jobRow(j, r.generatedAtMs)));
  }
  return lines;
}

function replayColumn(shown: boolean, cell: string): Array<[string, number]> {
  return shown ? [[cell, 6]] : [];
}

function sourceRow(s: SourceStatus, replays: boolean): string {
  return row([
    [cut(s.source, NAME), -NAME],
    [count(s.done + s.deduped), 8],
    [count(s.failed), 6],
    ...replayColumn(replays, count(s.replayed)),
    [s.submitted > 0 ? count(s.submitted) : '?', 8],
    [pct(s.percent), 6],
    [rate(s.ratePerSec), 7],
    [eta(s.etaSec), 6],
    [s.lastDoneAgeMs === null ? 'never' : duration(s.lastDoneAgeMs), 6],
    [s.state, -7],
  ]);
}

/** RAN: from its first request to its last answer once finished, else to now. */
function jobRow(j: JobStatus, nowMs: number): string {
  const ran =
    j.startedMs === null ? '-' : duration(Math.max(0, (j.finishedMs ?? nowMs) - j.startedMs));
  return row([
    [cut(j.job, NAME), -NAME],
    [count(j.answered), 8],
    [count(j.submitted), 8],
    [count(j.failed), 6],
    [pct(j.percent), 6],
    [rate(j.ratePerSec), 7],
    [eta(j.etaSec), 6],
    [ran, 6],
    [j.state, -7],
  ]);
}

function pct(p: number | null): string {
  return p === null ? '-' : p.toFixed(1);
}

function eta(sec: number | null): string {
  return sec === null ? '-' : duration(sec * 1000);
}
