/**
 * Structured logs (pino). Loggers are scoped with child bindings
 * ({consumer, stream, group}); page text and credentials are never passed in.
 * JSON lines for machines, or readable lines for a terminal (LOG_FORMAT).
 */
import { pino } from 'pino';

import { prettyDestination } from './log-pretty.js';

export type Logger = pino.Logger;
export type LogFormat = 'pretty' | 'json';

/** Pretty on a terminal, JSON when stdout is a pipe or a file (containers, log shippers). */
export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
}

export function createLogger(
  level: string,
  bindings: Record<string, unknown> = {},
  format: LogFormat = defaultLogFormat(),
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, ...bindings },
    // Belt and braces: if a caller ever passes these, they are not printed.
    redact: {
      paths: ['text', 'texts', '*.text', '*.texts', 'password', '*.password', 'url', '*.url'],
      censor: '[redacted]',
    },
  };
  return format === 'pretty' ? pino(options, prettyDestination()) : pino(options);
}

/**
 * A child whose info lines go out at debug: for routine housekeeping that a
 * component logs at info (the trimmer, once per stream per minute) and an
 * operator does not need unless debugging.
 */
export function quietInfo(log: Logger, bindings: Record<string, unknown>): Logger {
  const child = log.child(bindings);
  child.info = child.debug.bind(child);
  return child;
}
