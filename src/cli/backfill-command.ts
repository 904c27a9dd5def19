/**
 * `streambed backfill`: embed a corpus (a directory of .txt/.md files or a
 * JSONL file) through the bulk lane, with a progress bar, at most
 * BACKFILL_MAX_IN_FLIGHT pages unanswered at once, resumable by job name.
 */
import { Command } from 'commander';

import { countPages, readCorpus } from '../backfill/corpus.js';
import { type BackfillReport, runBackfill } from '../backfill/run.js';
import { checkJobName, defaultJobName, forgetJob, jobKeys } from '../backfill/state.js';
import { loadConfig } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { StreambedError } from '../errors.js';
import type { ReplyMode } from '../types.js';
import { addChunkOptions, chunkOption } from './chunk-option.js';
import { openCliConnection } from './client-connection.js';
import { warnUnlessServed } from './fleet-check.js';
import { ProgressBar } from './progress-bar.js';
import { addSettingOptions } from './settings-options.js';

export function backfillCommand(): Command {
  const cmd = new Command('backfill')
    .description(
      'Embed a corpus (directory of .txt/.md files, or JSONL of {id, source?, text|texts, meta?, chunk?, page_vector?}) through the bulk lane; re-run to resume.',
    )
    .argument('<input>', 'a directory (id = path relative to it) or a .jsonl file')
    .requiredOption('-m, --model <name>', 'model short name (from the fleet MODELS table)')
    .option(
      '-s, --source <name>',
      'source of pages without one (directories: all pages)',
      'backfill',
    )
    .option(
      '--job <name>',
      'job name: owns the reply stream and submitted set (default: from the input path)',
    )
    .option(
      '-w, --wait',
      'wait for every answer; exit 1 if any page was dead-lettered, listing them',
    )
    .option('--timeout-ms <ms>', 'with --wait, give up after this long (0 = never)', '0')
    .option('--restart', 'forget the job (its results and checkpoint) and start over')
    .option(
      '--reply <what>',
      'what each answer keeps in Redis: vectors, or status (no vectors: for a fleet with a SINK); default status when SINK or PG_URL is set here, else vectors',
    )
    .option('--force', 'submit even when no worker has ever served the model (no consumer group)')
    .option(
      '--progress-ms <ms>',
      'time between progress lines when stderr is not a terminal',
      '5000',
    );
  addChunkOptions(cmd);
  addSettingOptions(cmd, [
    ...REDIS_SETTINGS,
    'keyPrefix',
    'group',
    'backfillMaxInFlight',
    'backfillReplyTtlS',
  ]);
  cmd.action(async (input: string, o: Record<string, unknown>) => {
    const config = loadConfig(process.env, o);
    const job = checkJobName((o.job as string | undefined) ?? defaultJobName(input));
    const reply = replyMode(o.reply as string | undefined, config.sink ?? config.pgUrl);
    const chunk = chunkOption(o);
    const total = await countPages(input);
    const conn = await openCliConnection(config, `streambed-backfill-${job}`);
    const { client, redis } = conn;
    const startedAt = Date.now();
    let bar: ProgressBar | undefined;
    try {
      await warnUnlessServed(conn, o.model as string, Boolean(o.force));
      if (o.restart) await forgetJob(redis, jobKeys(client.keys, job));
      const report = await runBackfill({
        client,
        redis,
        model: o.model as string,
        job,
        pages: readCorpus(input, o.source as string, chunk),
        total,
        reply,
        replyTtlS: config.backfillReplyTtlS,
        maxInFlight: config.backfillMaxInFlight,
        wait: Boolean(o.wait),
        timeoutMs: Number(o.timeoutMs),
        onPlan: (plan) => {
          console.error(
            `backfill ${job}: ${plan.total} pages; ${plan.answered} already answered, ` +
              `${plan.waiting} submitted earlier (waiting), ${plan.toSubmit} to submit ` +
              `(bulk lane of ${o.model as string}, answers keep ${reply === 'status' ? 'status only' : 'vectors'})`,
          );
          if (plan.waiting + plan.toSubmit === 0) return;
          bar = new ProgressBar({
            total: plan.waiting + plan.toSubmit,
            intervalMs: Number(o.progressMs),
          }).start();
        },
        onAnswer: (a) => bar?.tick(a.status === 'error'),
        onRedisFull: () =>
          console.error(
            `backfill ${job}: Redis is full (maxmemory, noeviction): waiting for room, as workers drain the backlog`,
          ),
      }).finally(() => bar?.finish());
      console.error(summary(job, report, Boolean(o.wait), (Date.now() - startedAt) / 1000));
      if (o.wait && (report.errorCount > 0 || report.timedOut)) process.exitCode = 1;
    } finally {
      await conn.close();
    }
  });
  return cmd;
}

function summary(job: string, r: BackfillReport, waited: boolean, seconds: number): string {
  const rate = r.answeredNow / Math.max(seconds, 1e-3);
  const lines = [
    `backfill ${job}: submitted ${r.submitted} now, ${r.answeredNow} answered now, ` +
      `${r.answered + r.answeredNow}/${r.total} answered in all` +
      (r.outstanding > 0 ? `, ${r.outstanding} still in the fleet` : '') +
      ` (${seconds.toFixed(1)} s, ${rate.toFixed(1)} pages/s answered)`,
  ];
  if (!waited && r.outstanding > 0) lines.push('re-run with --wait to follow them to the end');
  if (r.timedOut) lines.push('timed out waiting; re-run to resume');
  if (r.errorCount > 0) {
    lines.push(`${r.errorCount} page(s) dead-lettered (error results; see streambed dlq list):`);
    for (const e of r.errors)
      lines.push(`  ${e.key}: ${e.code ?? 'error'}${e.message ? ` ${e.message}` : ''}`);
    if (r.errorCount > r.errors.length)
      lines.push(`  ... and ${r.errorCount - r.errors.length} more`);
  }
  return lines.join('\n');
}

/** `--reply`, or its default: status only when this environment names a sink (vectors are kept there). */
function replyMode(flag: string | undefined, sink: string | undefined): ReplyMode {
  if (flag === undefined) return sink ? 'status' : 'vectors';
  if (flag === 'status' || flag === 'vectors') return flag;
  throw new StreambedError('config', `--reply must be status or vectors, not ${flag}`);
}
