/**
 * The human form of a status report: fixed columns that fit an 80-column
 * terminal (breach lines excepted: never cut), compact numbers (12.3k) and
 * durations (3m12s). Per model: its
 * lanes (the bulk lane summed over every bulk stream), the bulk streams with
 * work, and its consumers with their state and idle time.
 */
import { clip, cut, NAME, rate, row, WIDTH } from './columns.js';
import { count, duration } from './format.js';
import type { ConsumerStatus, ModelStatus, StreamStatus } from './model-status.js';
import { renderProgress } from './render-progress.js';
import type { StatusReport } from './report.js';

export { WIDTH };

/** Bulk streams listed per model at most (unless named with --sources); JSON has them all. */
const MAX_BULK_ROWS = 8;
/** Consumers listed per model at most; JSON has them all. */
const MAX_CONSUMER_ROWS = 10;

export interface RenderOptions {
  /** Sources asked for with --sources: their bulk streams are listed even when empty. */
  sources?: readonly string[];
}

export function renderText(r: StatusReport, o: RenderOptions = {}): string {
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
        ['LIVE', 6],
        ['RATE/s', 9],
        ['DLQ', 8],
      ]),
    );
    for (const m of r.models) lines.push(...modelRows(m, o, r.generatedAtMs));
  }
  lines.push(...renderProgress(r));
  if (r.breaches.length > 0) {
    lines.push('', `BREACHED (${r.breaches.length})`);
    // One line per breach, never cut: `status --check | grep` must see all of it.
    for (const b of r.breaches) lines.push(`  ${b.kind}: ${b.message}`);
  }
  return lines.join('\n');
}

function modelRows(m: ModelStatus, o: RenderOptions, atMs: number): string[] {
  const live = `${m.liveConsumers}/${m.consumers.length}`;
  const out: string[] = [];
  for (const l of m.lanes) {
    const name = l.lane === 'bulk' ? `${m.model} (bulk)` : m.model;
    out.push(streamRow(name, l, live, l.lane === 'interactive' ? count(m.dlqLength) : ''));
    if (l.lane === 'bulk') out.push(...bulkRows(m.streams, o));
  }
  return [...out, ...providerRows(m, atMs), ...consumerRows(m.consumers)];
}

/** A remote model's cooldown (a provider's Retry-After, fleet-wide) and tokens spent today. */
function providerRows(m: ModelStatus, atMs: number): string[] {
  const p = m.provider;
  if (!p) return [];
  const parts: string[] = [];
  if (p.cooldownUntilMs !== null && p.cooldownUntilMs > atMs)
    parts.push(`cooling down ${((p.cooldownUntilMs - atMs) / 1000).toFixed(1)} s (Retry-After)`);
  if (p.tokensToday !== null) parts.push(`${count(p.tokensToday)} tokens spent today (UTC)`);
  if (p.refused !== null) parts.push(`refused: ${p.refused}`);
  return parts.length ? [`  provider: ${parts.join('; ')}`] : [];
}

/** The bulk streams with work (or named with --sources), most backlog first. */
function bulkRows(streams: StreamStatus[], o: RenderOptions): string[] {
  const named = new Set(o.sources ?? []);
  const backlog = (s: StreamStatus) => (s.lag ?? s.length) + s.pending;
  const shown = streams
    .filter((s) => s.lane === 'bulk' && (backlog(s) > 0 || named.has(s.source ?? '')))
    .sort((a, b) => backlog(b) - backlog(a) || a.stream.localeCompare(b.stream));
  const listed = shown.filter((s, i) => i < MAX_BULK_ROWS || named.has(s.source ?? ''));
  const out = listed.map((s) =>
    streamRow(`  ${s.source === '*' ? 'bulk (plain)' : `bulk:${s.source}`}`, s, '', ''),
  );
  const more = shown.length - listed.length;
  if (more > 0) out.push(`  + ${more} more bulk streams with work (--sources NAME or --json)`);
  return out;
}

type Counts = Pick<
  StreamStatus,
  'exists' | 'length' | 'groupExists' | 'lag' | 'pending' | 'oldestPending' | 'ratePerSec'
>;

function streamRow(name: string, l: Counts, live: string, dlq: string): string {
  return row([
    [cut(name, NAME), -NAME],
    [l.exists ? count(l.length) : '-', 8],
    [l.lag === null ? '-' : count(l.lag), 8],
    [l.groupExists ? count(l.pending) : '-', 8],
    [l.oldestPending ? duration(l.oldestPending.idleMs) : '-', 8],
    [live, 6],
    [rate(l.ratePerSec), 9],
    [dlq, 8],
  ]);
}

/** Every consumer (up to a cap): live ones first, then those holding entries, then by idle. */
function consumerRows(consumers: ConsumerStatus[]): string[] {
  if (consumers.length === 0) return [];
  const rank = (c: ConsumerStatus) => (c.state === 'live' ? 0 : c.pending > 0 ? 1 : 2);
  const sorted = [...consumers].sort((a, b) => rank(a) - rank(b) || a.idleMs - b.idleMs);
  const out = [
    row([
      ['  consumer', -38],
      ['STATE', -6],
      ['PEND', 8],
      ['IDLE', 10],
      ['OLDEST', 10],
    ]),
  ];
  for (const c of sorted.slice(0, MAX_CONSUMER_ROWS)) {
    out.push(
      row([
        [`  ${cut(c.name, 36)}`, -38],
        [c.state, -6],
        [count(c.pending), 8],
        [duration(c.idleMs), 10],
        [c.oldestPending ? duration(c.oldestPending.idleMs) : '-', 10],
      ]),
    );
  }
  const more = sorted.length - MAX_CONSUMER_ROWS;
  if (more > 0) out.push(`  + ${more} more consumers, idle longer (--json lists them)`);
  return out;
}
