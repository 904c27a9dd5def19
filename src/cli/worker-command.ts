/**
 * `streambed worker`: run one worker process. The first SIGTERM/SIGINT drains
 * (stop reading, finish in-flight batches within DRAIN_TIMEOUT_MS, exit 0);
 * a second signal, the timeout or a fatal error forces the stop: whatever is
 * still held is handed back (reclaimable at once by other workers) first.
 */
import { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import { toStreambedError } from '../errors.js';
import { startHttp } from '../http/server.js';
import { createLogger } from '../log.js';
import { logWorkerEvents } from '../metrics/event-log.js';
import { workerMetrics } from '../metrics/worker-metrics.js';
import { startWorker } from '../worker/worker-process.js';
import { addSettingOptions } from './settings-options.js';

export function workerCommand(): Command {
  const cmd = new Command('worker').description(
    'Run a worker: consume request streams and write embeddings.',
  );
  addSettingOptions(cmd);
  cmd.action(async (flags: Record<string, unknown>) => {
    // Flags already carry env values (commander .env()); loadConfig re-reads env for the rest.
    const config = loadConfig(process.env, flags);
    const log = createLogger(config.logLevel);
    const worker = startWorker(config, { log });
    logWorkerEvents(worker.events, worker.log);
    const http =
      config.metricsPort > 0
        ? await startHttp(
            config.metricsPort,
            worker,
            workerMetrics(worker, { sources: config.metricsSources }),
          )
        : undefined;
    let signals = 0;
    const onSignal = (signal: string) => {
      if (++signals > 1) {
        log.warn({ signal }, 'second signal: forcing the stop; held entries are handed back');
        void worker.forceStop();
        return;
      }
      log.info({ signal }, 'signal received: draining');
      void worker.stop().then((clean) => {
        http?.close();
        // 130: stopped by a second signal (the shell's code for an interrupt).
        process.exit(signals > 1 ? 130 : clean ? 0 : 1);
      });
    };
    const onFatal = (err: Error) => {
      log.fatal({ err: err.message }, 'fatal error: stopping; held entries are handed back');
      void worker.forceStop().finally(() => process.exit(1));
    };
    worker.events.on('fatal', ({ message }) => onFatal(new Error(message)));
    process.on('uncaughtException', onFatal);
    process.on('unhandledRejection', (reason) => onFatal(toStreambedError(reason)));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    await worker.started.catch((err: Error) => {
      log.fatal({ err: err.message }, 'worker failed to start');
      process.exit(1);
    });
  });
  return cmd;
}
