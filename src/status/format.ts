/** Compact numbers and durations for status output and messages. */

/** 99999 / 1234.5k / 123.5M / 12.3G: at most 7 characters. */
export function count(n: number): string {
  const a = Math.abs(n);
  if (a < 100_000) return String(n);
  if (a < 10_000_000) return `${(n / 1e3).toFixed(1)}k`;
  if (a < 10_000_000_000) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/** 850ms / 12s / 3m12s / 2h05m / 3d04h */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}
