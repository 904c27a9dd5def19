/** `streambed submit`: add pages to a model's request stream, optionally waiting for their results. */
import { randomUUID } from 'node:crypto';

import { Command, Option } from 'commander';

import { StreambedClient } from '../client/client.js';
import { loadConfig } from '../config/load.js';
import { StreambedError } from '../errors.js';
import { readPages } from './pages-input.js';
import { ProgressBar } from './progress-bar.js';
import { addSettingOptions } from './settings-options.js';
import { formatSummary, waitForResults } from './wait-results.js';

export function submitCommand(): Command {
  const cmd = new Command('submit')
    .description('Submit texts (arguments, files or JSONL) to a model stream.')
    .argument('[texts...]', 'texts to embed, one page each')
    .requiredOption('-m, --model <name>', 'model short name (from the fleet MODELS table)')
    .option('-s, --source <name>', 'source (tenant) name for pages without one', 'cli')
    .option('-f, --file <path...>', 'text or markdown files, one page each (id = path)', [])
    .option('--jsonl <path...>', 'JSONL files of {id, source?, text|texts, meta?}', [])
    .option(
      '--reply-to <stream>',
      'result stream (default: sb:results, or a private one with --wait)',
    )
    .addOption(
      new Option('--lane <lane>', 'interactive or bulk')
        .choices(['interactive', 'bulk'])
        .default('interactive'),
    )
    .option('-w, --wait', 'wait for the results and print a summary')
    .option('--timeout-ms <ms>', 'with --wait, give up after this long', '300000')
    .option('--print', 'with --wait, print one line per result')
    .option(
      '--progress-ms <ms>',
      'with --wait, time between progress lines when stderr is not a terminal',
      '5000',
    );
  addSettingOptions(cmd, ['redisUrl', 'keyPrefix', 'group']);
  cmd.action(async (texts: string[], o: Record<string, unknown>) => {
    const config = loadConfig(process.env, o);
    const pages = await readPages({
      texts,
      files: o.file as string[],
      jsonl: o.jsonl as string[],
      source: o.source as string,
    });
    if (pages.length === 0)
      throw new StreambedError('invalid', 'nothing to submit: give texts, --file or --jsonl');
    const client = new StreambedClient({
      redis: config.redisUrl,
      prefix: config.keyPrefix,
      group: config.group,
    });
    const replyTo =
      (o.replyTo as string | undefined) ??
      (o.wait ? client.keys.privateReply(`cli-${randomUUID()}`) : undefined);
    const startedAt = Date.now();
    try {
      const ids = await client.submit(pages, {
        model: o.model as string,
        lane: o.lane as 'interactive' | 'bulk',
        ...(replyTo && { replyTo }),
      });
      console.error(
        `submitted ${ids.length} entries to ${[...new Set(pages.map((p) => client.requestStream(p, o.model as string, o.lane as 'interactive' | 'bulk')))].join(', ')}`,
      );
      if (!o.wait) return;
      const bar = new ProgressBar({ total: ids.length, intervalMs: Number(o.progressMs) }).start();
      const summary = await waitForResults(client, replyTo as string, new Set(ids), {
        timeoutMs: Number(o.timeoutMs),
        startedAt,
        onResult: (r) => {
          bar.tick(r.status === 'error');
          if (o.print) bar.interrupt(() => console.log(JSON.stringify(printable(r))));
        },
      }).finally(() => bar.finish());
      console.error(formatSummary(summary));
      if (Object.keys(summary.errors).length > 0) process.exitCode = 1;
    } finally {
      await client.close();
    }
  });
  return cmd;
}

function printable(r: import('../types.js').EmbedResult) {
  if (r.status === 'error')
    return { id: r.id, rid: r.rid, status: r.status, code: r.res.code, message: r.res.message };
  return {
    id: r.id,
    rid: r.rid,
    status: r.status,
    dim: r.res.dim,
    head: Array.from(r.res.vectors[0]?.slice(0, 4) ?? []),
  };
}
