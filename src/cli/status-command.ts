/**
 * `streambed status`: request streams and their group (length, lag, pending,
 * oldest pending, consumers, rate), DLQs and per-source progress with a
 * staleness class. `--json` prints the versioned report (docs/observability.md),
 * `--watch` refreshes in place, `--check` exits 1 exactly when a threshold
 * is breached (for cron jobs and alerts).
 */
import { Command, InvalidArgumentError } from 'commander';

import { loadSettings } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { StreambedError } from '../errors.js';
import { keys as buildKeys } from '../keys.js';
import { connectClient, connectRedis, redisTarget } from '../redis/connect.js';
import { type GatherOptions, gatherSample, type Sample } from '../status/gather.js';
import { FailureTally } from '../status/jobs.js';
import { renderText } from '../status/render-text.js';
import { buildReport, type StatusReport, type Thresholds } from '../status/report.js';
import { addSettingOptions } from './settings-options.js';

/** In --watch, rates are measured over the samples of about this long. */
const WATCH_RATE_WINDOW_MS = 30_000;
const GATHER_TIMEOUT_MS = 10_000;

interface StatusFlags {
  json?: boolean;
  watch?: boolean;
  check?: boolean;
  intervalMs: number;
  sampleMs?: number;
  models?: string[];
  sources?: string[];
  jobs?: string[];
  pendingSample: number;
  liveMs: number;
  maxPendingAgeMs: number;
  maxDlq?: number;
  staleMs: number;
  activeMs: number;
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('Show request streams, consumers, DLQs, per-source and per-job progress.')
    .option('--json', 'print the report as JSON (schemaVersion 2, see docs/observability.md)')
    .option('--watch', 'refresh until interrupted (in place on a terminal, JSON lines with --json)')
    .option('--check', 'exit 1 when a threshold below is breached, else 0')
    .option('--interval-ms <ms>', 'with --watch, time between refreshes', ms, 2000)
    .option(
      '--sample-ms <ms>',
      'without --watch, measure rates over this window (0 = no rates; default 1000, 0 with --check)',
      ms,
    )
    .option(
      '--models <names>',
      'comma-separated models (default: every request stream found)',
      list,
    )
    .option(
      '--sources <names>',
      'comma-separated sources: their progress and bulk streams (default: every progress hash)',
      list,
    )
    .option('--jobs <names>', 'comma-separated backfill jobs (default: every job found)', list)
    .option('--pending-sample <n>', 'oldest pending entries listed per stream in --json', ms, 10)
    .option(
      '--max-pending-age-ms <ms|off>',
      'breach when an entry is pending (since its last delivery) longer than this',
      msOrOff,
      300_000,
    )
    .option(
      '--max-dlq <n|off>',
      'breach when a DLQ holds more records than this (default: off)',
      msOrOff,
    )
    .option(
      '--live-ms <ms>',
      'a consumer seen within this is live (keep above BLOCK_MS); work with no live consumer is a breach',
      ms,
      30_000,
    )
    .option(
      '--stale-ms <ms>',
      'a source with work left and nothing finished for this long is stale (a breach)',
      ms,
      600_000,
    )
    .option(
      '--active-ms <ms>',
      'a source that finished something this recently is active',
      ms,
      60_000,
    );
  addSettingOptions(cmd, [...REDIS_SETTINGS, 'keyPrefix', 'group']);
  cmd.action(async (flags: StatusFlags & Record<string, unknown>) => {
    if (flags.watch && flags.check)
      throw new StreambedError('invalid', '--check takes one sample; drop --watch');
    // Only what status uses: a worker setting (THREADS=abc) in the environment is not its business.
    const config = loadSettings(process.env, flags, [...REDIS_SETTINGS, 'keyPrefix', 'group']);
    quietOnClosedPipe();
    // One sample: a PING first, so an unreachable Redis ends it within seconds with the
    // line every command prints. --watch keeps retrying instead (it rides out a restart).
    const target = { ...redisTarget(config), name: 'streambed-status' };
    const redis = flags.watch ? connectRedis(target) : await connectClient(target);
    const keys = buildKeys(config.keyPrefix, config.group);
    const thresholds: Thresholds = {
      maxPendingAgeMs: threshold(flags.maxPendingAgeMs),
      maxDlq: threshold(flags.maxDlq),
      staleMs: flags.staleMs,
      activeMs: flags.activeMs,
      liveMs: flags.liveMs,
    };
    const gather: GatherOptions = {
      keys,
      pendingSample: flags.pendingSample,
      ...(flags.models && { models: flags.models }),
      ...(flags.sources && { sources: flags.sources }),
      ...(flags.jobs && { jobs: flags.jobs }),
      tally: new FailureTally(),
      // XPENDING IDLE is "at least"; a breach is "longer than".
      ...(thresholds.maxPendingAgeMs !== null && { minIdleMs: thresholds.maxPendingAgeMs + 1 }),
    };
    const ctx = {
      prefix: keys.prefix,
      group: keys.group,
      thresholds,
      pendingSample: flags.pendingSample,
    };
    const render = (r: StatusReport) =>
      renderText(r, { ...(flags.sources && { sources: flags.sources }) });
    const sample = () => withTimeout(gatherSample(redis, gather));
    try {
      if (flags.watch) {
        await watch(sample, (now, before) => buildReport(now, before, ctx), render, flags);
        return;
      }
      const sampleMs = flags.sampleMs ?? (flags.check ? 0 : 1000);
      const first = await sample();
      let report: StatusReport;
      if (sampleMs > 0) {
        await new Promise((r) => setTimeout(r, sampleMs));
        report = buildReport(await sample(), first, ctx);
      } else {
        report = buildReport(first, undefined, ctx);
      }
      process.stdout.write(
        flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${render(report)}\n`,
      );
      if (flags.check && report.breaches.length > 0) process.exitCode = 1;
    } finally {
      redis.disconnect();
    }
  });
  return cmd;
}

/** Refresh until SIGINT/SIGTERM. Rates come from the oldest sample within the rate window. */
async function watch(
  sample: () => Promise<Sample>,
  report: (now: Sample, before: Sample | undefined) => StatusReport,
  render: (r: StatusReport) => string,
  flags: StatusFlags,
): Promise<void> {
  const out = process.stdout;
  const tty = out.isTTY === true && !flags.json;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let running = true;
  const onSignal = () => {
    running = false;
    stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const history: Sample[] = [];
  if (tty) out.write('\x1b[2J');
  try {
    while (running) {
      let frame: string;
      try {
        const now = await sample();
        while (history.length > 1 && now.atMs - (history[0] as Sample).atMs > WATCH_RATE_WINDOW_MS)
          history.shift();
        const r = report(now, history[0]);
        history.push(now);
        frame = flags.json ? JSON.stringify(r) : render(r);
      } catch (err) {
        const message = `status unavailable: ${(err as Error).message} (retrying)`;
        frame = flags.json ? JSON.stringify({ error: message }) : message;
      }
      if (tty) {
        const lines = frame.split('\n').map((l) => `${l}\x1b[K`);
        out.write(`\x1b[H${lines.join('\n')}\n\x1b[J`);
      } else {
        out.write(flags.json ? `${frame}\n` : `${frame}\n\n`);
      }
      await Promise.race([stopped, new Promise((r) => setTimeout(r, flags.intervalMs))]);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * `status --watch | head` closes our stdout: that ends the command quietly
 * (exit 0), as it does for any Unix filter, instead of an EPIPE stack.
 */
function quietOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
}

async function withTimeout<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new StreambedError(
            'redis_unavailable',
            `no answer from Redis within ${GATHER_TIMEOUT_MS} ms`,
          ),
        ),
      GATHER_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function ms(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

/** `off` turns a threshold off (commander turns a null from a parser into '', so Infinity). */
function msOrOff(value: string): number {
  return value === 'off' ? Infinity : ms(value);
}

function threshold(value: number | undefined): number | null {
  return value === undefined || !Number.isFinite(value) ? null : value;
}

function list(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return items;
}
