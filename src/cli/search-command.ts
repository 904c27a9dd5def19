/**
 * `streambed search`: embed a query through the running fleet and print the
 * nearest rows in the model's sink table, to check the whole path end to end.
 */
import { Command } from 'commander';

import { StreambedClient } from '../client/client.js';
import { loadConfig } from '../config/load.js';
import { StreambedError } from '../errors.js';
import { createSink } from '../sink/index.js';
import { addSettingOptions } from './settings-options.js';

export function searchCommand(): Command {
  const cmd = new Command('search')
    .description('Embed a text with the fleet and list the nearest stored rows (needs a sink).')
    .argument('<text>', 'query text')
    .requiredOption('-m, --model <name>', 'model short name')
    .option('-k, --top <k>', 'rows to show', '5')
    .option('--timeout-ms <ms>', 'how long to wait for the fleet to embed the query', '30000')
    .option('--json', 'print JSON');
  addSettingOptions(cmd, ['redisUrl', 'keyPrefix', 'group', 'sink', 'pgUrl', 'sinkTablePrefix']);
  cmd.action(async (text: string, o: Record<string, unknown>) => {
    const config = loadConfig(process.env, o);
    const sink = createSink({ ...config, pgPoolSize: 1, sinkIndex: 'none' });
    if (!sink)
      throw new StreambedError('config', 'search needs a sink: set PG_URL or SINK=pglite:DIR');
    const client = new StreambedClient({
      redis: config.redisUrl,
      prefix: config.keyPrefix,
      group: config.group,
    });
    try {
      const [vector] = await client.embed([text], {
        model: o.model as string,
        timeoutMs: Number(o.timeoutMs),
        source: 'search',
      });
      const hits = await sink.search(o.model as string, vector as Float32Array, Number(o.top));
      if (o.json) console.log(JSON.stringify(hits));
      else
        for (const h of hits)
          console.log(`${h.distance.toFixed(4)}  ${h.source}/${h.id}#${h.chunk}`);
    } finally {
      await client.close();
      await sink.close();
    }
  });
  return cmd;
}
