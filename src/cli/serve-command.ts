/**
 * `streambed serve`: run the OpenAI-compatible gateway (src/gateway/).
 * SIGTERM/SIGINT drain it (stop accepting, answer what is in flight within
 * DRAIN_TIMEOUT_MS) and exit 0; a second signal exits at once.
 */
import { Command } from 'commander';

import { loadSettings } from '../config/load.js';
import { REDIS_SETTINGS } from '../config/settings.js';
import { startGateway } from '../gateway/server.js';
import { createLogger, defaultLogFormat } from '../log.js';
import { addSettingOptions } from './settings-options.js';

const USED = [
  ...REDIS_SETTINGS,
  'keyPrefix',
  'group',
  'models',
  'consumerName',
  'maxEnvelopeBytes',
  'drainTimeoutMs',
  'gatewayPort',
  'gatewayKeepAliveS',
  'gatewayTimeoutMs',
  'gatewayMaxBacklog',
  'gatewayMaxInputs',
  'gatewayMaxRequestBytes',
  'gatewayLongInput',
  'gatewayKeysFile',
  'gatewaySource',
  'replyToPattern',
  'logLevel',
  'logFormat',
] as const;

export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'Serve the fleet over an OpenAI-compatible HTTP API (POST /v1/embeddings, GET /v1/models).',
  );
  addSettingOptions(cmd, USED);
  cmd.action(async (flags: Record<string, unknown>) => {
    const config = loadSettings(process.env, flags, USED);
    const log = createLogger(
      config.logLevel,
      { role: 'gateway' },
      config.logFormat ?? defaultLogFormat(),
    );
    const gateway = await startGateway(config, log);
    let signals = 0;
    const onSignal = (signal: string) => {
      if (++signals > 1) process.exit(130);
      log.info({ signal }, 'signal received: draining the gateway');
      void gateway.stop().then((drained) => {
        log.info({ drained }, 'gateway stopped');
        process.exit(0);
      });
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  return cmd;
}
