/** What every case driver looks like to the runner. */
import type { Corpus } from '../corpus.js';
import type { CorpusName } from '../options.js';
import type { Latency } from '../stats.js';

export interface Measurement {
  texts: number;
  seconds: number;
  perSecond: number;
  /** Entry (or job) creation -> result written, ms. */
  latency?: Latency;
  /** CPU seconds the case's process(es) used during the run (2 cores = up to 2 s per s). */
  cpuSeconds?: number;
  /** Case-specific details (packing, thread busy, errors...). */
  detail?: Record<string, unknown>;
}

export interface CaseDriver {
  /** Stable id used in JSON (e.g. `a:2x1`, `d`, `e:bullmq`). */
  readonly id: string;
  readonly label: string;
  /** Start the process(es), load the model, warm up once through the whole path. */
  start(warmup: readonly string[]): Promise<void>;
  run(corpus: Corpus): Promise<Measurement>;
  /** Live process ids of the case (for CPU accounting). */
  pids(): number[];
  /** Peak RSS in MiB over the case's life (all its processes), then stop and clean up. */
  stop(): Promise<{ peakRssMb?: number }>;
}

/** One measured run of one case on one corpus. */
export interface RunRecord {
  round: number;
  corpus: CorpusName;
  caseId: string;
  /** Position of the case in this corpus's order (0 = first). */
  position: number;
  measurement: Measurement;
  /** CPU cores used on average by processes outside this benchmark while the case ran. */
  otherCores?: number;
  loadavg1: number;
  /** Runs made to get one the rest of the machine left alone (the least disturbed is kept). */
  attempts?: number;
}
