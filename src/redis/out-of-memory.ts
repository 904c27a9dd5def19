/**
 * Redis at `maxmemory` with `noeviction` refuses writes ("OOM command not
 * allowed"): the error of a command, the `cause` of ours that wraps it, or,
 * in a MULTI, among the `previousErrors` of its EXECABORT (then nothing of
 * the transaction was written). Memory comes back as workers drain the
 * backlog and trim, so callers wait or say "full", not "unreachable".
 */
export function isOutOfMemory(err: unknown): boolean {
  type Failure = { message?: unknown; cause?: unknown; previousErrors?: unknown[] };
  for (let e = err as Failure | undefined; e; e = e.cause as Failure | undefined) {
    const messages = [e.message, ...(e.previousErrors ?? []).map((p) => (p as Failure).message)];
    if (messages.some((m) => typeof m === 'string' && /\bOOM command not allowed/.test(m)))
      return true;
  }
  return false;
}
