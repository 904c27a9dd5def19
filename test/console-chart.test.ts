/**
 * The Helm chart with the web console on (rendered offline, as
 * test/deploy.test.ts does): its own Deployment and Service running
 * `streambed console` from the worker image, on the workers' ConfigMap (same
 * KEY_PREFIX and GROUP) and Redis Secret, every env var a setting that the
 * console's own loader accepts, listening beyond the pod, probes on its port,
 * the admin key mounted as a file and never in the env; its pod is selected
 * by nothing of the workers'. Off by default.
 */
import { describe, expect, it } from 'vitest';

import { loadSettings } from '../src/config/load.js';
import { SETTINGS } from '../src/config/settings.js';
import { helm, helmTemplate, type K8sObject, valuesFile } from './helpers/helm.js';

// Rendered manifests are untyped JSON.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const SETTING_ENVS = new Set(Object.values(SETTINGS).map((s) => s.env));

function render(values: unknown): K8sObject[] {
  const file = valuesFile(values);
  try {
    return helmTemplate([file.path]);
  } finally {
    file.dispose();
  }
}

const byName = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('chart: the web console', () => {
  it('renders nothing of the console by default', () => {
    const objects = render({});
    expect(objects.filter((o) => o.metadata.name.endsWith('-console'))).toEqual([]);
  });

  it('runs `streambed console` beside the workers, with their settings and its key as a file', () => {
    const objects = render({
      worker: { keyPrefix: 'acme', group: 'acme-workers' },
      console: { enabled: true, adminKey: { existingSecret: 'console-admin', key: 'key' } },
    });
    const deployment = byName(objects, 'Deployment', 'sb-streambed-console') as Json;
    const service = byName(objects, 'Service', 'sb-streambed-console') as Json;
    expect(deployment).toBeDefined();
    expect(service).toBeDefined();
    const pod = deployment.spec.template.spec;
    const c = pod.containers[0];
    expect(c.args).toEqual(['streambed', 'console']);

    // Env: the workers' ConfigMap plus its own, every name a setting, parsed by the console's loader.
    const configMap = byName(objects, 'ConfigMap', c.envFrom[0].configMapRef.name);
    const env: Record<string, string> = { ...(configMap?.data ?? {}) };
    for (const e of c.env) {
      expect(SETTING_ENVS.has(e.name), `${e.name} is a setting`).toBe(true);
      env[e.name] = e.value ?? 'redis://from-secret:6379';
    }
    expect(c.env.find((e: Json) => e.name === 'REDIS_URL').valueFrom.secretKeyRef).toBeDefined();
    const config = loadSettings(env, {}, [
      'redisUrl',
      'keyPrefix',
      'group',
      'consolePort',
      'consoleHost',
      'consoleAdminKeyFile',
    ]);
    expect(config).toMatchObject({
      keyPrefix: 'acme',
      group: 'acme-workers',
      consolePort: 8081,
      consoleHost: '0.0.0.0',
      consoleAdminKeyFile: '/etc/streambed/console/key',
    });

    // The key is a mounted Secret file, at the path the setting names.
    const mount = c.volumeMounts.find((m: Json) => m.name === 'admin-key');
    const volume = pod.volumes.find((v: Json) => v.name === 'admin-key');
    expect(mount).toMatchObject({ mountPath: '/etc/streambed/console', readOnly: true });
    expect(volume.secret).toMatchObject({
      secretName: 'console-admin',
      items: [{ key: 'key', path: 'key' }],
    });

    // Probes and the Service reach the port the console listens on.
    expect(c.ports).toEqual([{ name: 'console', containerPort: 8081, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 'console' });
    expect(service.spec.ports[0]).toMatchObject({ port: 8081, targetPort: 'console' });
    const podLabels = deployment.spec.template.metadata.labels;
    expect(matches(service.spec.selector, podLabels)).toBe(true);

    // No selector of the workers' picks up the console's pod, and the console selects no worker.
    const worker = byName(objects, 'Deployment', 'sb-streambed') as Json;
    const workerLabels = worker.spec.template.metadata.labels;
    for (const o of objects as Json[]) {
      const selector =
        o.spec?.selector?.matchLabels ?? (o.kind === 'Service' ? o.spec?.selector : undefined);
      if (!selector || o.metadata.name === 'sb-streambed-console') continue;
      expect(matches(selector, podLabels), `${o.kind} ${o.metadata.name}`).toBe(false);
    }
    expect(matches(deployment.spec.selector.matchLabels, workerLabels)).toBe(false);
  });

  it('is read-only without a key Secret, and the schema refuses unknown console values', () => {
    const objects = render({ console: { enabled: true } });
    const c = (byName(objects, 'Deployment', 'sb-streambed-console') as Json).spec.template.spec
      .containers[0];
    expect(c.env.map((e: Json) => e.name)).not.toContain('CONSOLE_ADMIN_KEY_FILE');
    const file = valuesFile({ console: { enabled: true, adminkey: 'oops' } });
    try {
      const r = helm(['template', 'sb', 'charts/streambed', '-f', file.path]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('adminkey');
    } finally {
      file.dispose();
    }
  });
});
