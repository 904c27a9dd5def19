/**
 * What a thread tells the main thread about a task besides its result: a
 * failure's class (by message prefix, errors cross threads as plain Errors)
 * and, through shared memory, when the task started running and whether ONNX
 * Runtime is inside it right now. Timeouts are measured from the start, not
 * from the queue, and a thread inside native code is never terminated.
 */

/** Message prefix of a model load failure inside a thread, so the main thread classes it as transient. */
export const MODEL_LOAD_FAILED = 'model_load_failed';

/**
 * 16 shared bytes: Int32 [0] = the ONNX Runtime phase of the task (0 = not
 * in the ORT path, 1 = in it, 2 = through it); Float64 [1] = epoch ms the task
 * started (0 = queued).
 */
export class RunProbe {
  readonly native: Int32Array;
  private readonly times: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(16)) {
    this.native = new Int32Array(buffer, 0, 1);
    this.times = new Float64Array(buffer, 8, 1);
  }

  start(): void {
    this.times[0] = Date.now();
  }

  /** Epoch ms the task started on a thread; undefined while it waits in the queue. */
  get startedAt(): number | undefined {
    return this.times[0] || undefined;
  }

  /** Inside the ORT path now: terminating the thread would abort the process. */
  get inNative(): boolean {
    return Atomics.load(this.native, 0) === 1;
  }

  /**
   * Entered the ORT path: the run is compute that always ends (a model call
   * plus bounded pre- and post-processing), so past its timeout it is slow,
   * not hung.
   */
  get boundedCompute(): boolean {
    return Atomics.load(this.native, 0) >= 1;
  }
}
