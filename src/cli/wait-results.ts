/** Wait for the results of submitted entries on a reply stream and summarise them. */
import type { StreambedClient } from '../client/client.js';
import type { EmbedResult } from '../types.js';

export interface Summary {
  ok: number;
  errors: Record<string, number>;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  dims: number[];
  results: EmbedResult[];
}

export async function waitForResults(
  client: StreambedClient,
  replyTo: string | readonly string[],
  rids: Set<string>,
  opts: { timeoutMs: number; startedAt: number; onResult?: (r: EmbedResult, done: number) => void },
): Promise<Summary> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const results: EmbedResult[] = [];
  const latencies: number[] = [];
  for await (const r of client.results(replyTo, { signal, blockMs: 200 })) {
    if (!rids.has(r.rid)) continue;
    rids.delete(r.rid);
    results.push(r);
    latencies.push(idTimeMs(r.resultId) - idTimeMs(r.rid));
    opts.onResult?.(r, results.length);
    if (rids.size === 0) break;
  }
  const seconds = (Date.now() - opts.startedAt) / 1000;
  latencies.sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const r of results)
    if (r.status === 'error') errors[r.res.code] = (errors[r.res.code] ?? 0) + 1;
  if (rids.size > 0) errors.timeout = rids.size;
  return {
    ok: results.filter((r) => r.status === 'ok').length,
    errors,
    seconds,
    perSecond: results.length / Math.max(seconds, 1e-3),
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    dims: [...new Set(results.flatMap((r) => (r.status === 'ok' ? [r.res.dim] : [])))],
    results,
  };
}

function idTimeMs(id: string): number {
  return Number(id.split('-')[0]);
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export function formatSummary(s: Summary): string {
  const errs = Object.entries(s.errors)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return (
    `${s.ok} ok${errs ? `, errors: ${errs}` : ''} in ${s.seconds.toFixed(2)} s ` +
    `(${s.perSecond.toFixed(1)} entries/s, latency p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms${s.dims.length ? `, dim ${s.dims.join('/')}` : ''})`
  );
}
