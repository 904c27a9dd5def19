/**
 * BATCH_TIMEOUT_MS for one batch: where a batch that runs too long is
 * noticed. Time is counted from the batch's start on a thread (time queued
 * behind other batches is not its fault). A batch past its time inside ONNX
 * Runtime is slow, not hung (a run always ends, and it cannot be interrupted
 * without taking the process down): it is waited for, and said so once. Any
 * other batch past its time is overdue: the dispatcher sends its texts again
 * (in-flight.ts), and whichever run finishes first answers each text.
 */
import type { BatchRun } from './backend.js';

/** How often a batch being waited out is looked at again, at most. */
const RECHECK_MS = 1_000;

export interface OverdueHandlers {
  /** Past its time but uninterruptible (inside ONNX Runtime): waited for. Called once. */
  waitingOut(): void;
  /** Past its time and interruptible: give up on this run. Called at most once. */
  overdue(): void;
}

/** Watch `run`; the returned function stops watching (call it when the run ends). */
export function watchOverdue(
  run: Pick<BatchRun, 'startedAt' | 'uninterruptible'>,
  timeoutMs: number,
  on: OverdueHandlers,
): () => void {
  let waitedOut = false;
  let timer: NodeJS.Timeout;
  const check = (): void => {
    const started = run.startedAt();
    const left = started === undefined ? timeoutMs : started + timeoutMs - Date.now();
    if (left > 0 || run.uninterruptible()) {
      if (left <= 0 && !waitedOut) {
        // Computing it again would only double the load; its entries' leases are renewed meanwhile.
        waitedOut = true;
        on.waitingOut();
      }
      timer = setTimeout(check, Math.max(left, Math.min(timeoutMs, RECHECK_MS)));
      return;
    }
    on.overdue();
  };
  timer = setTimeout(check, timeoutMs);
  return () => clearTimeout(timer);
}
