/**
 * `streambed worker`: run one worker process. The first SIGTERM/SIGINT drains
 * (stop reading, finish in-flight batches within DRAIN_TIMEOUT_MS, exit 0);
 * a second signal, the timeout or a fatal error forces the stop: whatever is
 * still held is handed back (reclaimable at once by other workers) first.
 */
import net from 'node:net';

import { Command } from 'commander';

import { type Config, loadConfig, redactUrl } from '../config/load.js';
import { StreambedError, toStreambedError } from '../errors.js';
import { startHttp } from '../http/server.js';
import { createLogger, defaultLogFormat } from '../log.js';
import { logWorkerEvents, logWorkSummary } from '../metrics/event-log.js';
import { workerMetrics } from '../metrics/worker-metrics.js';
import { checkLocalModels, parseModelTable } from '../models/table.js';
import { startWorker, type WorkerHandle } from '../worker/worker-process.js';
import { classify, EXIT_CONFIG } from './exit.js';
import { addSettingOptions } from './settings-options.js';

export function workerCommand(): Command {
  const cmd = new Command('worker').description(
    'Run a worker: consume request streams and write embeddings.',
  );
  addSettingOptions(cmd);
  cmd.action(async (flags: Record<string, unknown>) => {
    // Flags already carry env values (commander .env()); loadConfig re-reads env for the rest.
    const config = loadConfig(process.env, flags);
    const log = createLogger(config.logLevel, {}, config.logFormat ?? defaultLogFormat());
    // A local model folder that is not there will not appear by retrying (the
    // library's startWorker still waits for one, for embedders that populate it late).
    checkLocalModels(parseModelTable(config.models));
    // Before loading anything: a second worker on one host meets a taken port at once.
    if (config.metricsPort > 0) await checkPortFree(config.metricsPort);
    const worker = startWorker(config, { log });
    logWorkerEvents(worker.events, worker.log);
    logWorkSummary(worker.events, worker.log, {
      everyMs: config.logSummaryS * 1000,
      held: () => worker.stats().held,
    });
    const http = config.metricsPort > 0 ? await serveHttp(config, worker) : undefined;
    worker.log.info(
      { metricsPort: config.metricsPort || 'off', sink: sinkName(config) },
      'worker serving',
    );
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
    worker.events.on('fatal', () => {
      // Fatal = a configuration the worker must not run with (a sink table of another model).
      void worker.forceStop().finally(() => process.exit(EXIT_CONFIG));
    });
    process.on('uncaughtException', onFatal);
    process.on('unhandledRejection', (reason) => onFatal(toStreambedError(reason)));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    await worker.started.catch((err: Error) => {
      log.fatal({ err: err.message }, 'worker failed to start');
      process.exit(classify(err).code);
    });
  });
  return cmd;
}

/** The metrics server; a port taken meanwhile (checkPortFree raced) stops the worker. */
async function serveHttp(config: Config, worker: WorkerHandle) {
  try {
    return await startHttp(
      config.metricsPort,
      worker,
      workerMetrics(worker, { sources: config.metricsSources }),
    );
  } catch (err) {
    await worker.stop();
    throw portError(err, config.metricsPort);
  }
}

async function checkPortFree(port: number): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(portError(err, port)));
    probe.listen(port, () => probe.close(() => resolve()));
  });
}

/** A port already taken is a setting to change: say which. */
function portError(err: unknown, port: number): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') return err;
  return new StreambedError(
    'config',
    `METRICS_PORT ${port} is already in use (another worker on this host?): ` +
      `give each worker its own METRICS_PORT, or METRICS_PORT=0 to serve no metrics`,
  );
}

/** Where vectors go, for the start-up line (no password). */
function sinkName(config: Config): string {
  if (config.pgUrl) return redactUrl(config.pgUrl);
  return config.sink ?? 'none (streams only)';
}
