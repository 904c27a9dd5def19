/**
 * A task run every `intervalMs` after the previous run ends (runs never
 * overlap) until stop(), which waits for the run in progress. The reclaimer
 * and the trimmer are both this loop around one pass.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stoppedFlag = false;

  /** `intervalMs` 0 or less: start() does nothing. A run that throws is reported to `onError` and the loop goes on. */
  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<unknown>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** stop() was called: a pass in progress should end early. */
  get stopped(): boolean {
    return this.stoppedFlag;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    const tick = () => {
      if (this.stoppedFlag) return;
      this.running = this.task()
        .then(() => undefined)
        .catch((err: unknown) => this.onError(err as Error))
        .finally(() => {
          if (!this.stoppedFlag) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stoppedFlag = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
