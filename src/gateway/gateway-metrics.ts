/**
 * Prometheus metrics of one gateway process: requests by model, status code
 * and source, their latency, what is in flight, inputs sent to the fleet,
 * plus Node's default process metrics (RSS, event loop). Model labels are
 * only the catalog's names (`unknown` otherwise), and sources only those of
 * the keys file, so a client cannot grow the series without bound.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface GatewayMetrics {
  registry: Registry;
  /** Start timing a request; call the returned function once with its outcome. */
  begin(): (
    labels: { model: string; code: number; source: string },
    answered: { inputs: number; tokens: number },
  ) => void;
  setWaiting(read: () => number): void;
}

export function gatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'streambed_gateway_requests_total',
    help: 'Gateway embedding requests (POST /v1/embeddings) by model, status code and source.',
    labelNames: ['model', 'code', 'source'],
    registers: [registry],
  });
  const inputs = new Counter({
    name: 'streambed_gateway_inputs_total',
    help: 'Input strings of answered (200) embedding requests, by model and source.',
    labelNames: ['model', 'source'],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'streambed_gateway_tokens_total',
    help: "Tokens the models read for answered (200) embedding requests (their usage.prompt_tokens), by model and source: each tenant's usage.",
    labelNames: ['model', 'source'],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: 'streambed_gateway_request_duration_seconds',
    help: 'Time from a request received to its response sent, by model and status code.',
    labelNames: ['model', 'code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: 'streambed_gateway_in_flight_requests',
    help: 'Embedding requests received and not yet answered.',
    registers: [registry],
  });
  let waiting: () => number = () => 0;
  new Gauge({
    name: 'streambed_gateway_waiting_inputs',
    help: 'Inputs queued to the fleet whose vectors this gateway is waiting for.',
    registers: [registry],
    collect() {
      this.set(waiting());
    },
  });
  return {
    registry,
    begin() {
      const t0 = performance.now();
      inFlight.inc();
      return ({ model, code, source }, answered) => {
        inFlight.dec();
        requests.inc({ model, code: String(code), source });
        seconds.observe({ model, code: String(code) }, (performance.now() - t0) / 1000);
        if (code !== 200) return;
        inputs.inc({ model, source }, answered.inputs);
        tokens.inc({ model, source }, answered.tokens);
      };
    },
    setWaiting(read) {
      waiting = read;
    },
  };
}
