/**
 * `streambed search`: embed a query through the running fleet and print the
 * nearest rows in the model's sink table, to check the whole path end to end.
 * It opens the sink itself: with SINK=pglite:DIR that needs the folder free
 * (no worker on it), since an embedded data dir serves one process.
 */
import { randomBytes } from 'node:crypto';

import { Command } from 'commander';

import { loadConfig, redactUrl } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { StreambedError } from '../errors.js';
import { createSink, type SinkHit } from '../sink/index.js';
import { openCliConnection } from './client-connection.js';
import { warnUnlessServed } from './fleet-check.js';
import { addSettingOptions } from './settings-options.js';

export function searchCommand(): Command {
  const cmd = new Command('search')
    .description(
      'Embed a text with the fleet and list the nearest stored rows (needs a sink; ' +
        'a SINK=pglite:DIR folder must not be open in a worker at the same time).',
    )
    .argument('<text>', 'query text')
    .requiredOption('-m, --model <name>', 'model short name')
    .option('-k, --top <k>', 'rows to show', '5')
    .option('--timeout-ms <ms>', 'how long to wait for the fleet to embed the query', '30000')
    .option('--json', 'print JSON');
  addSettingOptions(cmd, [
    ...REDIS_SETTINGS,
    'keyPrefix',
    'group',
    'sink',
    'pgUrl',
    'sinkTablePrefix',
  ]);
  cmd.action(async (text: string, o: Record<string, unknown>) => {
    const config = loadConfig(process.env, o);
    const model = o.model as string;
    const timeoutMs = Number(o.timeoutMs);
    const sink = createSink({ ...config, pgPoolSize: 1, sinkIndex: 'none' });
    if (!sink)
      throw new StreambedError('config', 'search needs a sink: set PG_URL or SINK=pglite:DIR');
    // Redis first (a second or two to fail), then the sink (opening PGlite takes seconds).
    const conn = await openCliConnection(config, 'streambed-search');
    try {
      await warnUnlessServed(conn, model, false, 'the query waits');
      // A locked folder or a missing table is known before the fleet does any work.
      await sink.openTable(model).catch((err: unknown) => {
        throw unreachableSink(err, config.pgUrl);
      });
      // A query is not a source: its progress hash is deleted after the answer (and
      // expires by itself if the answer never comes), and so is the row a worker with
      // this sink stored for it (before answering, so it is there now).
      const source = `search-${randomBytes(4).toString('hex')}`;
      const [vector] = await conn.client.embed([text], {
        model,
        timeoutMs,
        source,
        progressTtlS: Math.ceil(timeoutMs / 1000) + 60,
      });
      await conn.redis.del(conn.client.keys.progress(source));
      await sink.deleteSource(model, source);
      const hits = await sink.search(model, vector as Float32Array, Number(o.top));
      if (o.json) console.log(JSON.stringify(hits));
      else if (hits.length === 0) console.error(`no rows stored for model "${model}" yet`);
      else for (const h of hits) console.log(formatHit(h));
    } finally {
      await conn.close();
      await sink.close();
    }
  });
  return cmd;
}

/**
 * `distance  source/id#chunk [start, end)`, and the stored passage below it,
 * indented, its whitespace runs (newlines) folded so each hit stays one block.
 */
export function formatHit(h: SinkHit): string {
  const span = h.span ? `  [${h.span[0]}, ${h.span[1]})` : '';
  const line = `${h.distance.toFixed(4)}  ${h.source}/${h.id}#${h.chunk}${span}`;
  return h.passage === undefined
    ? line
    : `${line}\n        ${h.passage.replace(/\s+/g, ' ').trim()}`;
}

/** A Postgres that is not there: say which one (without its password) and that it is PG_URL. */
function unreachableSink(err: unknown, pgUrl: string | undefined): unknown {
  if (!(err instanceof StreambedError) || err.code !== 'sink_unavailable' || !pgUrl) return err;
  const why = err.message.replace(/^sink: query failed: /, '');
  return new StreambedError(
    'sink_unavailable',
    `Postgres at ${redactUrl(pgUrl)} is not reachable (${why}): check PG_URL and that the server is running`,
    { cause: err },
  );
}
