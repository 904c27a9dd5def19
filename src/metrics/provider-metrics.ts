/**
 * Remote models' provider state on /metrics: requests by outcome (429s are
 * `rate_limited`), tokens spent (from the provider's `usage`), time spent
 * waiting for the fleet's limits, and, read from Redis on scrape, the
 * fleet-wide cooldown and the daily budget left. No series for local models.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

import type { WorkerHandle } from '../worker/worker-process.js';

export function registerProviderMetrics(registry: Registry, worker: WorkerHandle): void {
  const requests = new Counter({
    name: 'streambed_provider_requests_total',
    help: 'Remote provider requests by model and outcome: ok, rate_limited (429), server_error, timeout, connection, rejected (400/413/422), refused (401/403/404), malformed.',
    labelNames: ['model', 'outcome'],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'streambed_provider_tokens_total',
    help: "Tokens a remote model spent, from the provider's usage (the estimate when it sends none).",
    labelNames: ['model'],
    registers: [registry],
  });
  const waited = new Counter({
    name: 'streambed_provider_wait_seconds_total',
    help: 'Time requests waited before going to the provider, by reason: rpm, tpm, cooldown (a Retry-After), budget.',
    labelNames: ['model', 'reason'],
    registers: [registry],
  });
  worker.events.on('provider', (e) => {
    requests.inc({ model: e.model, outcome: e.outcome });
    if (e.tokens) tokens.inc({ model: e.model }, e.tokens);
  });
  worker.events.on('providerWait', (e) =>
    waited.inc({ model: e.model, reason: e.reason }, e.ms / 1000),
  );

  // One Redis read per scrape serves the three gauges below.
  let cached: { at: number; states: Awaited<ReturnType<WorkerHandle['providers']>> } | undefined;
  const states = async () => {
    if (!cached || Date.now() - cached.at > 500)
      cached = { at: Date.now(), states: await worker.providers().catch(() => []) };
    return cached.states;
  };
  new Gauge({
    name: 'streambed_provider_cooldown_until_seconds',
    help: "Epoch seconds until which the fleet waits out a provider's Retry-After (0: none).",
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      for (const s of await states())
        this.set({ model: s.model }, s.cooldownUntil > Date.now() ? s.cooldownUntil / 1000 : 0);
    },
  });
  new Gauge({
    name: 'streambed_provider_budget_left_tokens',
    help: 'Tokens left today (UTC) under budgetTokensPerDay; absent without a budget.',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      for (const s of await states())
        if (s.budgetLeft !== undefined) this.set({ model: s.model }, s.budgetLeft);
    },
  });
  new Gauge({
    name: 'streambed_provider_ready',
    help: '1 when the provider accepts the key and model and the daily budget is not spent; 0 otherwise.',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      for (const s of await states())
        this.set({ model: s.model }, s.refused || s.pausedUntil > Date.now() ? 0 : 1);
    },
  });
}
