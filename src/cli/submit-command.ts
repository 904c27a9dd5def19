/** `streambed submit`: add pages to a model's request stream, optionally waiting for their results. */
import { randomUUID } from 'node:crypto';

import { Command, Option } from 'commander';

import { withChunkDefault } from '../codec/page-line.js';
import { loadConfig } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { StreambedError } from '../errors.js';
import type { EmbedResult } from '../types.js';
import { addChunkOptions, chunkOption } from './chunk-option.js';
import { openCliConnection } from './client-connection.js';
import { checkReplyTo, warnUnlessServed } from './fleet-check.js';
import { readPages } from './pages-input.js';
import { ProgressBar } from './progress-bar.js';
import { addSettingOptions } from './settings-options.js';
import { formatSummary, waitForResults } from './wait-results.js';

export function submitCommand(): Command {
  const cmd = new Command('submit')
    .description(
      'Submit texts (arguments, files or JSONL) to a model stream. Prints one line per page ' +
        '(request entry id, page id) on stdout and where the results go on stderr.',
    )
    .argument('[texts...]', 'texts to embed, one page each')
    .requiredOption('-m, --model <name>', 'model short name (from the fleet MODELS table)')
    .option('-s, --source <name>', 'source (tenant) name for pages without one', 'cli')
    .option('-f, --file <path...>', 'text or markdown files, one page each (id = path)', [])
    .option(
      '--jsonl <path...>',
      'JSONL files of {id, source?, text|texts, meta?, chunk?, page_vector?}',
      [],
    )
    .option(
      '--reply-to <stream>',
      'result stream, matching REPLY_TO_PATTERN (default: sb:results, or with --wait a private one under each source, sb:reply:{source}/cli-…, deleted at the end)',
    )
    .addOption(
      new Option('--lane <lane>', 'interactive or bulk')
        .choices(['interactive', 'bulk'])
        .default('interactive'),
    )
    .option('-w, --wait', 'wait for the results and print a summary')
    .option('--timeout-ms <ms>', 'with --wait, give up after this long', '300000')
    .option('--print', 'with --wait, print one line per result')
    .option('--force', 'submit even when no worker has ever served the model (no consumer group)')
    .option(
      '--progress-ms <ms>',
      'with --wait, time between progress lines when stderr is not a terminal',
      '5000',
    );
  addChunkOptions(cmd);
  addSettingOptions(cmd, [...REDIS_SETTINGS, 'keyPrefix', 'group', 'replyToPattern']);
  cmd.action(async (texts: string[], o: Record<string, unknown>) => {
    const config = loadConfig(process.env, o);
    const model = o.model as string;
    const lane = o.lane as 'interactive' | 'bulk';
    let pages = await readPages({
      texts,
      files: o.file as string[],
      jsonl: o.jsonl as string[],
      source: o.source as string,
    });
    if (pages.length === 0)
      throw new StreambedError('invalid', 'nothing to submit: give texts, --file or --jsonl');
    const chunk = chunkOption(o);
    pages = pages.map((p) => withChunkDefault(p, chunk));
    const conn = await openCliConnection(config, 'streambed-submit');
    const { client, redis } = conn;
    const givenReplyTo = o.replyTo as string | undefined;
    const sources = [...new Set(pages.map((p) => p.source))];
    // Private streams of this run only, one under each source (what the fleet's
    // default REPLY_TO_PATTERN allows): deleted when the run ends, whatever happens.
    const run = `cli-${randomUUID()}`;
    const privateReplies =
      !givenReplyTo && o.wait ? sources.map((s) => client.keys.sourceReply(s, run)) : [];
    const replyTo =
      givenReplyTo ??
      (privateReplies.length > 0 ? (s: string) => client.keys.sourceReply(s, run) : undefined);
    const replyStreams = givenReplyTo ? [givenReplyTo] : privateReplies;
    const startedAt = Date.now();
    // Ctrl-C while waiting: the private streams go too, not only on a normal end.
    if (privateReplies.length > 0)
      process.once('SIGINT', () => {
        void redis.del(...privateReplies).finally(() => process.exit(130));
      });
    try {
      if (givenReplyTo !== undefined)
        checkReplyTo(
          givenReplyTo,
          config.replyToPattern ?? client.keys.defaultReplyPattern(),
          sources,
        );
      await warnUnlessServed(conn, model, Boolean(o.force));
      const ids = await client.submit(pages, { model, lane, ...(replyTo && { replyTo }) });
      const resultsAt = replyStreams[0] ?? client.keys.results();
      console.error(
        `submitted ${ids.length} entries to ${[...new Set(pages.map((p) => client.requestStream(p, model, lane)))].join(', ')}; ` +
          `results go to ${replyStreams.join(', ') || resultsAt}` +
          (o.wait ? '' : ` (read them with: redis-cli XRANGE ${resultsAt} - +)`),
      );
      if (!o.wait) {
        ids.forEach((rid, i) => console.log(`${rid}\t${pages[i]?.source}/${pages[i]?.id}`));
        return;
      }
      const bar = new ProgressBar({ total: ids.length, intervalMs: Number(o.progressMs) }).start();
      const summary = await waitForResults(client, replyStreams, new Set(ids), {
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
      // Best effort: with Redis gone the reason is already on its way to the user.
      if (privateReplies.length > 0) await redis.del(...privateReplies).catch(() => undefined);
      await conn.close();
    }
  });
  return cmd;
}

function printable(r: EmbedResult) {
  if (r.status === 'error')
    return { id: r.id, rid: r.rid, status: r.status, code: r.res.code, message: r.res.message };
  return {
    id: r.id,
    rid: r.rid,
    status: r.status,
    dim: r.res.dim,
    ...(r.res.spans && { spans: r.res.spans }),
    head: Array.from(r.res.vectors[0]?.slice(0, 4) ?? []),
  };
}
