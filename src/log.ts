/**
 * Structured JSON logs (pino). Loggers are scoped with child bindings
 * ({consumer, stream, group}); page text and credentials are never passed in.
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    // Belt and braces: if a caller ever passes these, they are not printed.
    redact: {
      paths: ['text', 'texts', '*.text', '*.texts', 'password', '*.password', 'url', '*.url'],
      censor: '[redacted]',
    },
  });
}
