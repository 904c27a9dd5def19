/**
 * Progress of `submit --wait` on stderr: on a terminal, one bar redrawn in
 * place (done/total, percent, recent rate, ETA, errors); otherwise a plain
 * line every `intervalMs` and a last one at the end, so logs of a long job
 * show it moving (or not) instead of "0/164" then "164/164".
 * The rate is measured over the last RATE_WINDOW_MS of results.
 */
const RATE_WINDOW_MS = 10_000;
const TTY_REDRAW_MS = 100;

export interface ProgressOptions {
  total: number;
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force the terminal form on or off (default: whether `out` is a TTY). */
  tty?: boolean;
  /** Plain form: time between lines. */
  intervalMs?: number;
  now?: () => number;
}

export class ProgressBar {
  private readonly out: NonNullable<ProgressOptions['out']>;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly samples: Array<[number, number]> = [];
  private done = 0;
  private errors = 0;
  private lastDraw = 0;
  private drawn = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ProgressOptions) {
    this.out = o.out ?? process.stderr;
    this.tty = o.tty ?? this.out.isTTY === true;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.samples.push([this.startedAt, 0]);
  }

  /** Draw now and keep drawing on a timer, so time moves even while nothing finishes. */
  start(): this {
    this.draw();
    this.timer = setInterval(
      () => this.draw(),
      this.tty ? 1000 : Math.max(50, this.o.intervalMs || 5000),
    ).unref();
    return this;
  }

  /** One more result; redraws the bar at most every 100 ms on a terminal. */
  tick(failed = false): void {
    this.done++;
    if (failed) this.errors++;
    const t = this.now();
    this.samples.push([t, this.done]);
    while (this.samples.length > 2 && t - (this.samples[1] as [number, number])[0] > RATE_WINDOW_MS)
      this.samples.shift();
    if (this.tty && (t - this.lastDraw >= TTY_REDRAW_MS || this.done === this.o.total)) this.draw();
  }

  /** Print something (e.g. a --print line) without tearing the bar. */
  interrupt(print: () => void): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[K');
    print();
    if (this.tty && this.drawn) this.draw();
  }

  /** Final state, then stop the timer; the bar stays on screen. */
  finish(): void {
    clearInterval(this.timer);
    this.draw();
    if (this.tty) this.out.write('\n');
  }

  /** Entries per second over the recent window. */
  rate(): number {
    const first = this.samples[0] as [number, number];
    const seconds = (this.now() - first[0]) / 1000;
    return seconds > 0 ? (this.done - first[1]) / seconds : 0;
  }

  line(): string {
    const { total } = this.o;
    const pct = total > 0 ? (this.done * 100) / total : 100;
    const rate = this.rate();
    const left = total - this.done;
    const eta = left <= 0 ? '0s' : rate > 0 ? duration((left / rate) * 1000) : '?';
    const elapsed = duration(this.now() - this.startedAt);
    const errors = this.errors ? `  ${this.errors} error${this.errors === 1 ? '' : 's'}` : '';
    const stats = `${this.done}/${total} ${pct.toFixed(1)}%  ${rate.toFixed(1)}/s  ETA ${eta}  elapsed ${elapsed}${errors}`;
    if (!this.tty) return `progress ${stats}`;
    const columns = this.out.columns ?? 80;
    const width = Math.max(10, Math.min(30, columns - stats.length - 4));
    const full = Math.round((width * Math.min(this.done, total)) / Math.max(total, 1));
    return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${stats}`.slice(0, columns - 1);
  }

  private draw(): void {
    this.lastDraw = this.now();
    this.drawn = true;
    this.out.write(this.tty ? `\r${this.line()}\x1b[K` : `${this.line()}\n`);
  }
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
