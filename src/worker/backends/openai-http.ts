/**
 * Remote models (`openai:<provider-model>`): an EmbedBackend that sends each
 * micro-batch as one `POST {baseUrl}/embeddings` from the main thread (an
 * HTTP call needs no thread). The dispatcher packs a remote model's batches
 * to its `maxInputs` and `maxRequestTokens` (LoadedModel.limits), so one
 * batch is one request.
 *
 * Per request: a slot of the model's `concurrency` in this process, then the
 * fleet's permission (fleet-limiter.ts), then the call. Only the call counts
 * as started (BatchRun.startedAt) and it is uninterruptible: it always ends
 * (`timeoutMs`), and sending its texts again past BATCH_TIMEOUT_MS would pay
 * the provider twice. Load is one probe request: it proves the key and the
 * model and reads the dimension, so the sink table is sized (and a mismatch
 * fails) before any entry is read, as for a local model.
 */
import { createHash } from 'node:crypto';

import type { Redis } from 'ioredis';

import type { EmbedTaskResult } from '../../../workers/embed-worker.js';
import type { TokenizedBatch } from '../../../workers/tokenize.js';
import { StreambedError, toStreambedError } from '../../errors.js';
import type { Keys } from '../../keys.js';
import type { Logger } from '../../log.js';
import type { RemoteOptions } from '../../models/remote-options.js';
import type { ModelSpec } from '../../models/table.js';
import type { BatchRun, EmbedBackend } from '../backend.js';
import { estimateTokens } from '../batcher.js';
import type { WorkerEvents } from '../events.js';
import type { LoadedModel } from '../pool.js';
import { FleetLimiter, type LimiterState } from './fleet-limiter.js';
import {
  classifyFetchError,
  classifyStatus,
  errorMessage,
  parseEmbeddings,
  requestBody,
  type RequestOutcome,
  retryAfterMs,
  shareTokens,
} from './openai-protocol.js';
import { Slots } from './slots.js';

/** A 429 without Retry-After still holds the fleet back this long. */
const DEFAULT_COOLDOWN_MS = 1_000;
/** The probe's text: short, fixed, and not a page. */
const PROBE_TEXT = 'streambed dimension probe';

export interface ProviderState extends LimiterState {
  model: string;
  /** Why the provider refuses this model (401/403/404, a changed dimension); undefined when fine. */
  refused: string | undefined;
}

interface Remote {
  spec: ModelSpec;
  opts: RemoteOptions;
  /** The provider's model id (the ref after `openai:`). */
  providerModel: string;
  slots: Slots;
  limiter: FleetLimiter;
  /** As configured, or `float` once the probe found the server refuses base64. */
  encoding: 'base64' | 'float';
  dim?: number;
  refused?: string;
  /** When this process last had a usable answer from the provider (ms). */
  lastOkAt?: number;
  /**
   * When each input (by a digest: a page may be large, and a dead-lettered one
   * is never dropped) was first in a request answered malformed; dropped once answered.
   */
  malformedSince: Map<string, number>;
}

/** Inputs remembered in `malformedSince`, at most (cleared when full: a provider gone wrong). */
const MALFORMED_MEMORY = 10_000;

const digest = (text: string): string => createHash('sha1').update(text).digest('base64');

export interface OpenAiBackendDeps {
  redis: Redis;
  keys: Keys;
  events: WorkerEvents;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

export class OpenAiBackend implements EmbedBackend {
  private readonly remotes = new Map<string, Remote>();
  private readonly abort = new AbortController();

  constructor(
    specs: readonly ModelSpec[],
    private readonly deps: OpenAiBackendDeps,
  ) {
    for (const spec of specs) {
      const opts = spec.remote as RemoteOptions;
      const limiter = new FleetLimiter(deps.redis, deps.keys, spec.name, opts, (reason, ms) =>
        deps.events.emit('providerWait', { model: spec.name, reason, ms }),
      );
      this.remotes.set(spec.name, {
        spec,
        opts,
        providerModel: spec.ref.slice(spec.ref.indexOf(':') + 1),
        slots: new Slots(opts.concurrency),
        limiter,
        encoding: opts.encoding,
        malformedSince: new Map(),
      });
    }
  }

  /** Requests in flight at once, all remote models of this process. */
  get threads(): number {
    return [...this.remotes.values()].reduce((n, r) => n + r.opts.concurrency, 0);
  }

  async load(spec: ModelSpec): Promise<LoadedModel> {
    const remote = this.remotes.get(spec.name);
    if (!remote) throw new StreambedError('internal', `model ${spec.name} is not a remote model`);
    const started = performance.now();
    try {
      remote.dim = (await this.probe(remote)).dim;
    } catch (err) {
      // The worker names the model in its log and /readyz ("model X failed to load: ...").
      const e = toStreambedError(err);
      throw new StreambedError('model_load_failed', e.message, { cause: e });
    }
    return {
      spec,
      dim: remote.dim,
      maxTokens: remote.opts.maxRequestTokens,
      loadMs: performance.now() - started,
      limits: {
        batchSize: remote.opts.maxInputs,
        maxBatchTokens: remote.opts.maxRequestTokens,
        // One more request costs a rate-limit slot: worth more than any text's tokens.
        requestCostTokens: remote.opts.maxRequestTokens,
      },
    };
  }

  /**
   * One fixed short text: a 400/422 to it is about the request, not a page.
   * Asked as base64 and refused, it is asked again as floats, and the model
   * keeps floats (servers that only know `encoding_format: float`).
   */
  private async probe(remote: Remote): Promise<EmbedTaskResult> {
    try {
      return await this.embed(remote.spec.name, [PROBE_TEXT]).result;
    } catch (err) {
      if (remote.encoding !== 'base64' || (err as StreambedError).code !== 'model_error') throw err;
      remote.encoding = 'float';
      const out = await this.embed(remote.spec.name, [PROBE_TEXT]).result;
      this.deps.log.warn(
        { model: remote.spec.name },
        'provider refused base64 vectors; asking for floats (set encoding=float to skip the retry)',
      );
      return out;
    }
  }

  embed(model: string, input: string[] | TokenizedBatch): BatchRun {
    const remote = this.remotes.get(model);
    let startedAt: number | undefined;
    let calling = false;
    const run = async (): Promise<EmbedTaskResult> => {
      if (!remote)
        throw new StreambedError('model_load_failed', `model ${model} is not loaded here`);
      if (!Array.isArray(input))
        throw new StreambedError('internal', `remote model ${model} was sent token ids`);
      const estimates = input.map((t) => estimateTokens(t, remote.opts.maxRequestTokens));
      await remote.slots.take();
      try {
        await remote.limiter.acquire(estimates.reduce((a, b) => a + b, 0));
        startedAt = Date.now();
        calling = true;
        return await this.call(remote, input, estimates);
      } finally {
        calling = false;
        remote.slots.give();
      }
    };
    return { result: run(), startedAt: () => startedAt, uninterruptible: () => calling };
  }

  /** Why a model is not ready (readiness, status): a refused key or model, a spent budget. */
  reasons(): string[] {
    const out: string[] = [];
    for (const [name, r] of this.remotes) {
      if (r.refused) out.push(`model ${name}: ${r.refused}`);
      const paused = r.limiter.seen().pausedUntil;
      if (paused > Date.now())
        out.push(
          `model ${name} paused: daily token budget spent until ${new Date(paused).toISOString()}`,
        );
    }
    return out;
  }

  /** Per-model provider state from Redis (metrics, status). */
  async states(): Promise<ProviderState[]> {
    return Promise.all(
      [...this.remotes].map(async ([model, r]) => ({
        model,
        refused: r.refused,
        ...(await r.limiter.read()),
      })),
    );
  }

  async close(): Promise<void> {
    for (const r of this.remotes.values()) r.limiter.stop();
    this.abort.abort();
  }

  /** One request; `estimates`: each input's estimated tokens, as the fleet limit was charged. */
  private async call(
    remote: Remote,
    input: string[],
    estimates: readonly number[],
  ): Promise<EmbedTaskResult> {
    const { spec, opts } = remote;
    const estimate = estimates.reduce((a, b) => a + b, 0);
    const t0 = performance.now();
    const report = (outcome: RequestOutcome, extra: { status?: number; tokens?: number } = {}) =>
      this.deps.events.emit('provider', {
        model: spec.name,
        outcome,
        inputs: input.length,
        ms: performance.now() - t0,
        ...extra,
      });
    const headers = this.headers(remote);
    let res: Response;
    try {
      res = await fetch(`${opts.baseUrl.replace(/\/$/, '')}/embeddings`, {
        method: 'POST',
        headers,
        body: requestBody(remote.providerModel, input, {
          dimensions: opts.dimensions,
          encoding: remote.encoding,
        }),
        signal: AbortSignal.any([AbortSignal.timeout(opts.timeoutMs), this.abort.signal]),
      });
    } catch (err) {
      const { error, outcome } = classifyFetchError(err);
      report(outcome);
      throw error;
    }
    // The fleet learns of a Retry-After from the headers, before the body is read:
    // until the cooldown is in Redis, other workers keep sending.
    const after = res.ok ? undefined : retryAfterMs(res.headers);
    const cooling =
      res.status === 429 || after !== undefined
        ? remote.limiter
            .coolDown(after ?? DEFAULT_COOLDOWN_MS)
            // Handled at once (no unhandled rejection while the body is read); the batch
            // fails transient anyway, so Redis refusing the cooldown only costs this warning.
            .catch((err: Error) =>
              this.deps.log.warn({ model: spec.name, err: err.message }, 'cannot record cooldown'),
            )
        : undefined;
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      const { error, outcome } = classifyStatus(res.status, errorMessage(text));
      report(outcome, { status: res.status });
      await cooling;
      if (outcome === 'refused') await this.refuse(remote, error.message);
      throw error;
    }
    let answer;
    try {
      answer = parseEmbeddings(JSON.parse(text), input.length);
    } catch (err) {
      report('malformed', { status: res.status });
      // Not JSON (a proxy's HTML page): the provider is not answering; a wrong answer to
      // these inputs is `provider_malformed` from parseEmbeddings.
      const e = toStreambedError(err, 'provider_unavailable');
      if (e.code === 'provider_malformed') throw this.malformed(remote, input, e);
      throw e;
    }
    if (remote.dim !== undefined && answer.dim !== remote.dim) {
      // The provider now serves another model under this name: nothing can be answered.
      await this.refuse(remote, `provider answered dim ${answer.dim}, loaded with ${remote.dim}`);
      report('malformed', { status: res.status });
      throw new StreambedError('provider_refused', `model ${spec.name}: ${remote.refused}`);
    }
    if (remote.refused !== undefined) await this.refuse(remote, undefined);
    const tokens = answer.tokens ?? estimate;
    report('ok', { status: res.status, tokens });
    remote.lastOkAt = Date.now();
    // Empty but for a provider that answered malformed lately: no digest on the usual path.
    if (remote.malformedSince.size > 0)
      for (const text of input) remote.malformedSince.delete(digest(text));
    if (answer.tokens !== undefined)
      await remote.limiter
        .settle(answer.tokens - estimate)
        .catch((err: Error) =>
          this.deps.log.warn({ model: spec.name, err: err.message }, 'token reconcile failed'),
        );
    return {
      data: answer.data,
      dim: answer.dim,
      truncated: new Uint8Array(input.length),
      tokens: shareTokens(tokens, estimates),
      paddedTokens: tokens,
      ms: performance.now() - t0,
    };
  }

  /**
   * A malformed answer is the inputs' fault (`provider_malformed`: split, and
   * a lone input dead-lettered) only with evidence that the provider works:
   * a proper answer to other requests since these inputs were first answered
   * malformed. Without it the provider itself may be broken, and a lone input
   * waits as in an outage (`provider_unavailable`) instead of being
   * dead-lettered along with everything else.
   */
  private malformed(remote: Remote, input: string[], e: StreambedError): StreambedError {
    const now = Date.now();
    if (remote.malformedSince.size + input.length > MALFORMED_MEMORY) remote.malformedSince.clear();
    let since = now;
    for (const text of input) {
      const key = digest(text);
      const first = remote.malformedSince.get(key) ?? now;
      remote.malformedSince.set(key, first);
      since = Math.min(since, first);
    }
    const provedWorking = (remote.lastOkAt ?? -Infinity) > since;
    return input.length === 1 && !provedWorking
      ? new StreambedError('provider_unavailable', e.message, { cause: e })
      : e;
  }

  /**
   * Record (or, `why` undefined, clear) a refusal: in this process for /readyz,
   * and in Redis for `streambed status` (an hour at most: a fleet that stopped
   * asking should not show it forever). Best effort: Redis down must not hide
   * the provider's answer.
   */
  private async refuse(remote: Remote, why: string | undefined): Promise<void> {
    remote.refused = why;
    const key = this.deps.keys.providerRefused(remote.spec.name);
    await (
      why === undefined ? this.deps.redis.del(key) : this.deps.redis.set(key, why, 'EX', 3600)
    ).catch((err: Error) =>
      this.deps.log.warn(
        { model: remote.spec.name, err: err.message },
        'cannot record provider state',
      ),
    );
  }

  private headers(remote: Remote): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    const name = remote.opts.apiKeyEnv;
    if (name) {
      const key = (this.deps.env ?? process.env)[name];
      // The variable's name is safe to show; its value never is.
      if (!key) {
        // Only this process lacks it: said in its /readyz, not recorded for the fleet.
        remote.refused = `env var ${name} (apiKeyEnv) is not set`;
        throw new StreambedError('provider_refused', remote.refused);
      }
      h.authorization = `Bearer ${key}`;
    }
    return h;
  }
}
