/**
 * `streambed console`: the web console (src/console/) on CONSOLE_PORT.
 * Read-only unless CONSOLE_ADMIN_KEY_FILE names a key file. Fails fast, like
 * every command, when Redis cannot be reached at start; afterwards a lost
 * Redis shows on the page and the console keeps retrying.
 */
import { once } from 'node:events';

import { Command, InvalidArgumentError } from 'commander';

import { loadSettings } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { addSettingOptions } from './settings-options.js';

const USED = [
  ...REDIS_SETTINGS,
  'keyPrefix',
  'group',
  'consolePort',
  'consoleHost',
  'consoleAdminKeyFile',
  'logLevel',
  'logFormat',
] as const;

export function consoleCommand(): Command {
  const cmd = new Command('console')
    .description(
      'Serve the web console: streams, consumers, progress, backfill jobs, dead letters.',
    )
    .option('--interval-ms <ms>', 'how often the console reads the fleet status', intervalMs, 1000);
  addSettingOptions(cmd, USED);
  cmd.action(async (flags: Record<string, unknown> & { intervalMs: number }) => {
    const config = loadSettings(process.env, flags, USED);
    // Loaded here, not at the top: every other command's start stays as fast as before.
    const [
      { readAdminKey },
      { Sampler },
      { consoleUrl, startConsoleServer },
      { keys: buildKeys },
      { createLogger },
      { connectClient, connectRedis, redisTarget },
    ] = await Promise.all([
      import('../console/admin-key.js'),
      import('../console/sampler.js'),
      import('../console/server.js'),
      import('../keys.js'),
      import('../log.js'),
      import('../redis/connect.js'),
    ]);
    const admin = readAdminKey(config.consoleAdminKeyFile);
    const log = createLogger(config.logLevel, { component: 'console' }, config.logFormat);
    const connection = redisTarget(config);
    // One PING with the CLI's bounded retries, so a wrong REDIS_URL ends here with exit 3;
    // the console's own connection then reconnects for as long as it runs.
    (await connectClient({ ...connection, name: 'streambed-console' })).disconnect();
    // No offline queue: while Redis is away a sample fails at once and the page says
    // so, instead of commands piling up behind a reconnect.
    const redis = connectRedis({
      ...connection,
      name: 'streambed-console',
      offlineQueue: false,
      log,
    });
    await once(redis, 'ready');
    const keys = buildKeys(config.keyPrefix, config.group);
    const sampler = new Sampler(redis, keys, flags.intervalMs, log);
    await sampler.start();
    const server = await startConsoleServer({
      host: config.consoleHost,
      port: config.consolePort,
      redis,
      keys,
      sampler,
      admin,
      log,
    });
    console.log(
      `streambed console: ${consoleUrl(server)} (${admin ? 'admin key set' : 'read-only'})`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await sampler.stop();
    redis.disconnect();
  });
  return cmd;
}

function intervalMs(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 100) throw new InvalidArgumentError('expected at least 100 (ms)');
  return n;
}
