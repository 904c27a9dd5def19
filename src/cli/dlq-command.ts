/**
 * `streambed dlq list | replay | purge`: look at dead-lettered entries, send
 * them back to the stream they came from, or delete them, by model, source,
 * reason or entry id. Never prints page text. The work is in src/dlq/.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Redis } from 'ioredis';

import { type Config, loadConfig } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { purgeDlq } from '../dlq/purge.js';
import { type DlqSummary, summarize } from '../dlq/record.js';
import { HOPELESS_REASONS, replayDlq } from '../dlq/replay.js';
import { checkFilter, type DlqFilter, selectDlq } from '../dlq/select.js';
import { RESULT_ERROR_CODES, StreambedError } from '../errors.js';
import { keys as buildKeys } from '../keys.js';
import { connectClient, redisTarget } from '../redis/connect.js';
import { addSettingOptions } from './settings-options.js';

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('Expected a positive integer.');
  return n;
}

function withFilters(cmd: Command, defaultLimit?: number): Command {
  cmd
    .option('-m, --model <name>', 'only this model’s DLQ (default: every model)')
    .option('-s, --source <name>', 'only entries of this source')
    .addOption(
      new Option('-r, --reason <code>', 'only entries dead-lettered for this reason').choices(
        RESULT_ERROR_CODES,
      ),
    )
    .addOption(
      new Option('--limit <n>', 'at most this many entries')
        .argParser(positiveInteger)
        .default(defaultLimit),
    )
    .option('--json', 'print JSON instead of a table');
  return addSettingOptions(cmd, [...REDIS_SETTINGS, 'keyPrefix', 'group']);
}

type Flags = Record<string, unknown>;

function filterOf(o: Flags): DlqFilter {
  const filter: DlqFilter = {
    ...(o.model !== undefined && { model: o.model as string }),
    ...(o.source !== undefined && { source: o.source as string }),
    ...(o.reason !== undefined && { reason: o.reason as string }),
    ...(o.ids !== undefined && { ids: o.ids as string[] }),
    ...(o.limit !== undefined && { limit: o.limit as number }),
  };
  checkFilter(filter);
  return filter;
}

/** Connect (failing within seconds when Redis is not there), run, disconnect. */
async function withRedis<T>(config: Config, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectClient({
    ...redisTarget(config),
    name: 'streambed-dlq',
  });
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description(
    'Dead letters: list them, replay them to the stream they came from, or purge them.',
  );

  const list = withFilters(
    new Command('list').description('List dead-lettered entries (never their text).'),
    100,
  );
  list.action(async (o: Flags) => {
    const config = loadConfig(process.env, o);
    const filter = filterOf(o);
    const { records, more } = await withRedis(config, (redis) =>
      selectDlq(redis, buildKeys(config.keyPrefix, config.group), filter),
    );
    const entries = records.map(summarize);
    if (o.json) {
      console.log(JSON.stringify({ entries, more }));
      return;
    }
    console.log(table(entries));
    if (more) console.log(`more entries match: raise --limit (now ${filter.limit})`);
  });

  const replay = withFilters(
    new Command('replay').description(
      'Re-submit entries, with their original fields, to the request stream they came from; ' +
        'each leaves the DLQ and is logged in {prefix}:dlq:{model}:replayed in one atomic step.',
    ),
  )
    .option('--ids <id...>', 'only these DLQ entry ids')
    .option('--dry-run', 'show what would be replayed, change nothing')
    .option(
      '--force',
      `also replay entries dead-lettered as ${HOPELESS_REASONS.join(' or ')} (skipped by default: the same fields fail the same way)`,
    );
  replay.action(async (o: Flags) => {
    const config = loadConfig(process.env, o);
    const filter = filterOf(o);
    const report = await withRedis(config, (redis) =>
      replayDlq(redis, buildKeys(config.keyPrefix, config.group), filter, {
        dryRun: o.dryRun === true,
        force: o.force === true,
      }),
    );
    if (o.json) {
      console.log(JSON.stringify(report));
      return;
    }
    if (report.replayed.length) console.log(table(report.replayed, true));
    for (const s of report.skipped) console.log(`skipped ${s.dlqId} (${s.dlqStream}): ${s.why}`);
    const expired = report.replayed.filter((r) => r.reason === 'expired').length;
    if (expired)
      console.log(`note: ${expired} expired entries keep their deadline_ms and will expire again`);
    console.log(
      `${report.dryRun ? 'would replay' : 'replayed'} ${report.replayed.length}, skipped ${report.skipped.length}` +
        (report.more ? ' (more match: raise --limit)' : ''),
    );
  });

  const purge = withFilters(
    new Command('purge').description('Delete entries from the DLQ for good (needs --yes).'),
  )
    .option('--ids <id...>', 'only these DLQ entry ids')
    .option('--dry-run', 'show what would be deleted, change nothing')
    .option('--yes', 'really delete');
  purge.action(async (o: Flags) => {
    const config = loadConfig(process.env, o);
    const filter = filterOf(o);
    if (o.yes !== true && o.dryRun !== true)
      throw new StreambedError(
        'invalid',
        'purge deletes entries for good: add --yes (or --dry-run to see which)',
      );
    const report = await withRedis(config, (redis) =>
      purgeDlq(redis, buildKeys(config.keyPrefix, config.group), filter, {
        dryRun: o.dryRun === true,
      }),
    );
    if (o.json) {
      console.log(JSON.stringify(report));
      return;
    }
    if (report.purged.length) console.log(table(report.purged));
    console.log(
      report.dryRun
        ? `would delete ${report.purged.length}`
        : `deleted ${report.deleted} of ${report.purged.length} selected` +
            (report.more ? ' (more match: raise --limit)' : ''),
    );
  });

  return dlq.addCommand(list).addCommand(replay).addCommand(purge);
}

/** A plain aligned table of summaries; the message is cut short, the text is never there. */
function table(rows: Array<DlqSummary & { newId?: string }>, withNewId = false): string {
  const head = ['DLQ ID', 'STREAM', 'RID', 'ID', 'SOURCE', 'REASON', 'DELIV', 'FAILED'];
  if (withNewId) head.push('NEW RID');
  head.push('MESSAGE');
  const cells = rows.map((r) => {
    const row = [
      r.dlqId,
      r.stream ?? '?',
      r.rid ?? '?',
      r.id ?? '-',
      r.source ?? '-',
      r.reason ?? '?',
      r.deliveries === undefined ? '?' : String(r.deliveries),
      r.failedMs === undefined ? '?' : new Date(r.failedMs).toISOString(),
    ];
    if (withNewId) row.push(r.newId ?? '-');
    row.push(short(r.message ?? '', 60));
    return row;
  });
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}

function short(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
