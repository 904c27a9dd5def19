/**
 * What the worker tells the outside world. Metrics and logs subscribe here at
 * the edges; the loop itself never calls prom-client.
 */
import { EventEmitter } from 'node:events';

import type { Outcome } from './answer.js';

export interface WorkerEventMap {
  /** One entry finished: its result is written and it is acked. */
  answered: [
    {
      model: string;
      stream: string;
      outcome: Outcome;
      code?: string;
      latencyMs: number;
      deliveries: number;
      /** The request entry id (for log lines); optional until every emitter sets it. */
      id?: string;
      /** The envelope's source, when it had a valid one. */
      source?: string;
    },
  ];
  /** A micro-batch came back from a thread. */
  batch: [
    {
      model: string;
      texts: number;
      tokens: number;
      paddedTokens: number;
      ms: number;
      /** Tokens by the envelopes' source (a remote model's `usage` shared out per text). */
      bySource?: ReadonlyMap<string, number>;
    },
  ];
  /** Another consumer took the entry over before we could publish it. */
  fenced: [{ model: string; stream: string; id: string }];
  /** The reclaimer took over entries idle on other consumers. */
  reclaimed: [{ model: string; stream: string; count: number }];
  /**
   * A batch ran past BATCH_TIMEOUT_MS: its texts are sent again (its thread
   * stays busy until it returns or is replaced), or, `waiting`, it is inside
   * ONNX Runtime and is waited for.
   */
  overdue: [{ model: string; texts: number; waiting: boolean }];
  /** A batch failed and was split to isolate the guilty entries. */
  split: [{ model: string; texts: number; reason: string }];
  /** The worker cannot run (e.g. a sink table of another dimension); the process should exit. */
  fatal: [{ message: string }];
  /** A remote model's provider request ended (backends/openai-http.ts); `tokens` from `usage`. */
  provider: [
    {
      model: string;
      outcome: string;
      inputs: number;
      ms: number;
      status?: number;
      tokens?: number;
    },
  ];
  /** A remote request waited for the fleet's rate limit, a cooldown or the daily budget. */
  providerWait: [{ model: string; reason: string; ms: number }];
  /** Redis became reachable or unreachable for the loop. */
  redis: [{ up: boolean }];
}

export class WorkerEvents extends EventEmitter<WorkerEventMap> {}
