/**
 * How the command line ends on an error: one line on stderr and an exit code
 * that says whose move it is.
 *   2  configuration or usage: change a setting, a flag or an argument;
 *   3  a service (Redis, the sink) is not reachable: try again later, or fix the address;
 *   1  anything else (internal): a bug to report, with the message.
 */
import { type StreambedError, toStreambedError } from '../errors.js';

export const EXIT_CONFIG = 2;
export const EXIT_UNREACHABLE = 3;
export const EXIT_INTERNAL = 1;

/** Node's file errors on a path the user gave: their mistake, not ours. */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
};
/** Redis refusing the credentials of REDIS_URL (a worker meets it as a failed command). */
const REDIS_AUTH = /^(WRONGPASS|NOAUTH|NOPERM)/;
/** ioredis failing a command after its bounded reconnects gave up. */
const REDIS_LOST = /Connection is closed|max retries per request|Reached the max retries/i;

export function classify(err: unknown): { code: number; line: string } {
  const fileError = describeFileError(err);
  if (fileError) return { code: EXIT_CONFIG, line: `streambed: config: ${fileError}` };
  const e = toStreambedError(err);
  if (e.code === 'internal' && REDIS_AUTH.test(e.message))
    return {
      code: EXIT_CONFIG,
      line: `streambed: config: Redis refused the credentials (${e.message}): fix the user and password in REDIS_URL`,
    };
  if (e.code === 'internal' && REDIS_LOST.test(e.message))
    return {
      code: EXIT_UNREACHABLE,
      line: `streambed: redis_unavailable: lost the connection to Redis (${e.message})`,
    };
  return { code: exitCode(e), line: `streambed: ${e.code}: ${e.message}` };
}

function exitCode(e: StreambedError): number {
  if (e.code === 'config' || e.code === 'invalid') return EXIT_CONFIG;
  if (e.code === 'redis_unavailable' || e.code === 'sink_unavailable') return EXIT_UNREACHABLE;
  return EXIT_INTERNAL;
}

function describeFileError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  const what = e?.code && FILE_ERRORS[e.code];
  if (!what || typeof e.path !== 'string') return undefined;
  return `cannot read ${e.path}: ${what}`;
}

export function exitWith(err: unknown): never {
  const { code, line } = classify(err);
  console.error(line);
  process.exit(code);
}
