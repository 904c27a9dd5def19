/**
 * The chart's gateway (`streambed serve`) against the code it deploys,
 * rendered offline like test/deploy.test.ts: its env is settings the
 * gateway loads, it runs a command the CLI has, probes and Service hit its
 * port, the keys file is a mounted Secret, it offers the workers' models
 * with their limits, and its objects and the workers' never select each
 * other's pods.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import type { Config } from '../src/config/load.js';
import { flagName, SETTINGS } from '../src/config/settings.js';
import { parseModelTable } from '../src/models/table.js';
import {
  CHART_DIR,
  helm,
  helmTemplate,
  isGatewayObject,
  type K8sObject,
  valuesFile,
} from './helpers/helm.js';
import { containerEnv, named, only, workerConfig } from './helpers/manifests.js';
import { BIN } from './helpers/worker.js';

// Rendered manifests are untyped JSON; the checks below assert their shape as they read it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const SETTING_ENVS = new Set(Object.values(SETTINGS).map((s) => s.env));
const ciFile = (set: string) => join(CHART_DIR, 'ci', `${set}-values.yaml`);

const podLabels = (d: K8sObject): Record<string, string> => d.spec.template.metadata.labels;
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const modelNames = (models: string) => models.split(',').map((m) => m.split('=')[0]);

describe('helm chart: gateway', () => {
  let objects: K8sObject[];
  let gateway: K8sObject[];
  let workers: K8sObject[];
  let deployment: K8sObject;
  let pod: Json;
  let container: Json;
  let env: Map<string, string | undefined>;
  let config: Config;

  // Rendered once, in a hook: a chart that fails to render fails the tests, not their collection.
  beforeAll(() => {
    objects = helmTemplate([ciFile('gateway-on')]);
    gateway = objects.filter(isGatewayObject);
    workers = objects.filter((o) => !isGatewayObject(o));
    deployment = only(gateway, 'Deployment');
    pod = deployment.spec.template.spec;
    container = pod.containers[0];
    env = containerEnv(objects, container);
    config = workerConfig(env);
  });

  it('runs `streambed serve`, a command the CLI has, with env the gateway loads', () => {
    expect(container.name).toBe('gateway');
    expect(container.command, 'keeps the image entrypoint (tini)').toBeUndefined();
    expect(container.args).toEqual(['streambed', 'serve']);
    const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    for (const name of env.keys()) {
      if (name === 'POD_NAME') continue; // names the process (consumerName), not a setting
      expect(SETTING_ENVS.has(name), `env ${name} is a setting`).toBe(true);
      // ...that `serve` reads: it has the flag.
      expect(help.stdout, name).toContain(flagName(name));
    }
  });

  it('listens, is probed and is served on GATEWAY_PORT', () => {
    expect(config.gatewayPort).toBe(8081);
    const port = container.ports.find((p: Json) => p.name === 'http');
    expect(port.containerPort).toBe(config.gatewayPort);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    const service = only(gateway, 'Service');
    expect(service.spec.ports[0].targetPort).toBe('http');
    expect(selects(service.spec.selector, podLabels(deployment))).toBe(true);
  });

  it('offers the workers models with their prefix, group and limits', () => {
    const worker = workerConfig(
      containerEnv(objects, only(workers, 'Deployment').spec.template.spec.containers[0]),
    );
    expect(modelNames(config.models)).toEqual(['minilm', 'tiny']);
    expect(modelNames(config.models)).toEqual(modelNames(worker.models));
    for (const key of ['keyPrefix', 'group', 'maxEnvelopeBytes', 'replyToPattern'] as const)
      expect(config[key], key).toEqual(worker[key]);
    // The workers' own pattern: the gateway checks its reply streams against it at start.
    expect(config.replyToPattern).toBe('sb:reply:{source}/*');
    expect(config.maxEnvelopeBytes).toBe(262144);
    // Both read the same table, options included: the gateway cuts sizes the workers agree on.
    const minilm = parseModelTable(config.models).find((m) => m.name === 'minilm');
    expect(minilm).toMatchObject({
      chunk: { on: true, window: 128, overlap: 16 },
      matryoshka: [128, 256],
    });
    expect(config.models).toBe(worker.models);
    expect(config).toMatchObject({
      gatewayTimeoutMs: 20000,
      gatewayMaxBacklog: 5000,
      gatewayLongInput: 'chunk',
    });
    expect(env.has('REDIS_URL')).toBe(true);
  });

  it('reads API keys from the Secret mounted at GATEWAY_KEYS_FILE', () => {
    const file = config.gatewayKeysFile!;
    const mount = container.volumeMounts.find((m: Json) => file.startsWith(`${m.mountPath}/`));
    expect(mount, 'GATEWAY_KEYS_FILE is on a mounted volume').toBeDefined();
    expect(mount.readOnly).toBe(true);
    const volume = pod.volumes.find((v: Json) => v.name === mount.name);
    expect(volume.secret.secretName).toBe('streambed-gateway-keys');
    expect(`${mount.mountPath}/${volume.secret.items[0].path}`).toBe(file);
    expect(volume.secret.items[0].key).toBe('keys.txt');
  });

  it('drains before SIGKILL, on a read-only root', () => {
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      config.drainTimeoutMs + preStop * 1000,
    );
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.volumeMounts.map((m: Json) => m.mountPath)).toContain('/tmp');
  });

  it('scales on CPU with its own HPA, and the Ingress routes to its Service', () => {
    const hpa = only(gateway, 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    expect(deployment.spec.replicas, 'the HPA owns the replica count').toBeUndefined();
    const ingress = only(gateway, 'Ingress');
    const backend = ingress.spec.rules[0].http.paths[0].backend.service;
    const service = named(gateway, 'Service', backend.name)!;
    expect(service).toBeDefined();
    expect(service.spec.ports.map((p: Json) => p.name)).toContain(backend.port.name);
    expect(ingress.spec.tls[0].secretName).toBe('embeddings-tls');
  });

  it('never selects worker pods, and no worker object selects gateway pods', () => {
    const workerPods = podLabels(only(workers, 'Deployment'));
    const gatewayPods = podLabels(deployment);
    expect(selects(only(gateway, 'Service').spec.selector, workerPods)).toBe(false);
    expect(selects(deployment.spec.selector.matchLabels, workerPods)).toBe(false);
    for (const o of workers) {
      const selector =
        o.spec?.selector?.matchLabels ?? (o.kind === 'Service' ? o.spec.selector : undefined);
      if (selector)
        expect(selects(selector, gatewayPods), `${o.kind} ${o.metadata.name}`).toBe(false);
    }
  });

  it('is off by default', () => {
    expect(helmTemplate([ciFile('default')]).filter(isGatewayObject)).toEqual([]);
  });

  it('rejects a typo under gateway and an Ingress without hosts', () => {
    for (const [values, message] of [
      [{ gateway: { enabled: true, prot: 8080 } }, /prot/],
      [{ gateway: { enabled: true, ingress: { enabled: true } } }, /gateway.ingress.hosts/],
    ] as const) {
      const file = valuesFile(values);
      try {
        const r = helm(['template', 'sb', CHART_DIR, '-f', file.path]);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(message);
      } finally {
        file.dispose();
      }
    }
  });
});
