/**
 * The Helm chart, the kustomize base and the Dockerfile against the worker
 * they deploy. No cluster and no Docker here: the tests render the manifests
 * offline and hold them to the code. Every env var is a setting from
 * src/config/settings.ts and parses with the worker's own loader, probes hit
 * the real endpoints on METRICS_PORT, SIGKILL comes after the drain, KEDA
 * watches exactly the streams and group the worker reads (src/keys.ts), the
 * CPU request covers the threads, bad values are refused, and the image runs
 * the same `streambed worker` as the README.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { type Config, loadConfig, maxHeldEntries } from '../src/config/load.js';
import { SETTINGS } from '../src/config/settings.js';
import { keys, type Lane } from '../src/keys.js';
import { parseModelTable } from '../src/models/table.js';
import {
  CHART_DIR,
  helm,
  helmTemplate,
  isGatewayObject,
  type K8sObject,
  kustomizeBuild,
  ROOT,
  valuesFile,
  yamllint,
  yamllintInstalled,
} from './helpers/helm.js';
import { containerEnv, named, only, secretKeys, workerConfig } from './helpers/manifests.js';

// Rendered manifests are untyped JSON; the checks below assert their shape as they read it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const SETTING_ENVS = new Set(Object.values(SETTINGS).map((s) => s.env));
/** Not settings, but allowed: POD_NAME names the consumer; NODE_OPTIONS tunes Node. */
const EXTRA_ENVS = new Set(['POD_NAME', 'NODE_OPTIONS']);
const LANES: Lane[] = ['interactive', 'bulk'];

const CI_DIR = join(CHART_DIR, 'ci');
const VALUE_SETS = [
  'default',
  'keda-on',
  'hpa-on',
  'postgres-sink-on',
  'existing-secrets',
  'gateway-on',
  'remote-provider',
  'sentinel',
  'cluster',
];
const ciFile = (set: string) => join(CI_DIR, `${set}-values.yaml`);
const renders = new Map<string, K8sObject[]>();
/** helm template with one ci values file, rendered once per test file. */
function render(set: string): K8sObject[] {
  if (!renders.has(set)) renders.set(set, helmTemplate([ciFile(set)]));
  return renders.get(set)!;
}
const ciValues = (set: string) =>
  (parseYaml(readFileSync(ciFile(set), 'utf8')) ?? {}) as Record<string, unknown>;

/** CPU quantity ("2", 2, "1500m", "0.5") in cores. */
function cores(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

interface Workload {
  deployment: K8sObject;
  pod: Json;
  worker: Json;
  env: Map<string, string | undefined>;
  config: Config;
}

/** The worker fleet's objects: everything but the gateway's (test/deploy-gateway.test.ts). */
const workerObjects = (objects: K8sObject[]) => objects.filter((o) => !isGatewayObject(o));

/** The checks every rendering (chart value sets and kustomize base) must pass. */
function checkWorkload(all: K8sObject[]): Workload {
  const objects = workerObjects(all);
  const deployment = only(objects, 'Deployment');
  const pod = deployment.spec.template.spec;
  const worker = pod.containers.find((c: Json) => c.name === 'worker');
  expect(worker, 'a container named worker').toBeDefined();

  // Every env var of every container is a real setting (or POD_NAME/NODE_OPTIONS, or a
  // remote model's key variable, named by the model's apiKeyEnv).
  const keyEnvs = new Set(
    parseModelTable(containerEnv(objects, worker).get('MODELS') ?? '').flatMap((m) =>
      m.remote?.apiKeyEnv ? [m.remote.apiKeyEnv] : [],
    ),
  );
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    for (const name of containerEnv(objects, c).keys()) {
      expect(
        SETTING_ENVS.has(name) || EXTRA_ENVS.has(name) || keyEnvs.has(name),
        `${c.name}: env ${name} is a setting in src/config/settings.ts`,
      ).toBe(true);
    }
  }
  const env = containerEnv(objects, worker);
  // The sink takes SINK (embedded PGlite) or PG_URL (a server), never both (src/sink/index.ts).
  expect(env.has('SINK') && env.has('PG_URL'), 'SINK and PG_URL together').toBe(false);
  // ...and parses with the worker's own strict loader, models included.
  const config = workerConfig(env);
  expect(parseModelTable(config.models).length).toBeGreaterThan(0);

  // The image's CMD runs the worker; a command/args override would bypass it.
  expect(worker.command, 'worker keeps the image entrypoint').toBeUndefined();
  expect(worker.args, 'worker keeps the image CMD').toBeUndefined();

  // Probes on the worker's real endpoints and port.
  const port = config.metricsPort;
  expect(port).toBeGreaterThan(0);
  const portOf = (p: number | string) =>
    typeof p === 'number' ? p : worker.ports.find((x: Json) => x.name === p)?.containerPort;
  const probe = (kind: string, path: string) => {
    const get = worker[kind]?.httpGet;
    expect(get, `${kind} is an httpGet probe`).toBeDefined();
    expect(get.path).toBe(path);
    expect(portOf(get.port)).toBe(port);
  };
  probe('livenessProbe', '/healthz');
  probe('readinessProbe', '/readyz');
  if (worker.startupProbe) probe('startupProbe', '/healthz');

  // SIGKILL only after the drain timeout.
  expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.drainTimeoutMs);

  // THREADS is explicit (Node sees the node's cores, not the pod's) and the CPU request covers it.
  expect(env.get('THREADS'), 'THREADS is set').toBeDefined();
  const busyCores = config.threads! * config.intraOpThreads;
  expect(cores(worker.resources.requests.cpu)).toBeGreaterThanOrEqual(busyCores);

  // Read-only root: only /tmp and the model cache are writable.
  expect(worker.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(worker.securityContext.allowPrivilegeEscalation).toBe(false);
  expect(pod.securityContext.runAsNonRoot).toBe(true);
  const mounts = worker.volumeMounts.map((m: Json) => m.mountPath);
  expect(mounts).toContain('/tmp');
  expect(config.modelCacheDir, 'MODEL_CACHE_DIR is set').toBeDefined();
  expect(mounts).toContain(config.modelCacheDir);

  // The metrics Service and the PDB select these pods.
  const podLabels = deployment.spec.template.metadata.labels;
  const selects = (selector: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  const service = only(objects, 'Service');
  expect(selects(service.spec.selector)).toBe(true);
  const target = service.spec.ports[0].targetPort;
  expect(portOf(target)).toBe(port);
  expect(selects(only(objects, 'PodDisruptionBudget').spec.selector.matchLabels)).toBe(true);

  return { deployment, pod, worker, env, config };
}

/** Request streams the worker reads for its models, built by the worker's own key module. */
function expectedStreams(config: Config): string[] {
  const k = keys(config.keyPrefix, config.group);
  return parseModelTable(config.models).flatMap((m) =>
    LANES.map((lane) => k.request(m.name, lane)),
  );
}

function checkKeda(objects: K8sObject[], w: Workload): Json[] {
  const so = only(objects, 'ScaledObject');
  expect(so.spec.scaleTargetRef.name).toBe(w.deployment.metadata.name);
  expect(w.deployment.spec.replicas, 'KEDA owns the replica count').toBeUndefined();
  const all: Json[] = so.spec.triggers;
  // Sentinel mode: the same triggers as their redis-sentinel kinds, on the sentinels' addresses.
  const kind = w.config.redisSentinels
    ? 'redis-sentinel'
    : w.config.redisCluster
      ? 'redis-cluster'
      : 'redis';
  for (const t of all) {
    expect([`${kind}-streams`, kind]).toContain(t.type);
    if (w.config.redisSentinels) {
      expect(t.metadata.addresses).toBe(w.config.redisSentinels);
      expect(t.metadata.sentinelMaster).toBe(w.config.redisSentinelName);
    } else expect(t.metadata.address ?? t.metadata.addresses).toMatch(/^[^:/]+:\d+$/);
    if (t.authenticationRef) {
      const auth = named(objects, 'TriggerAuthentication', t.authenticationRef.name);
      expect(auth, `TriggerAuthentication ${t.authenticationRef.name}`).toBeDefined();
    }
  }
  // One backlog list per model, as the SDK and the publish script name it (src/keys.ts).
  const k = keys(w.config.keyPrefix, w.config.group);
  const lists = all.filter((t) => t.type === kind);
  expect(lists.map((t) => t.metadata.listName).sort()).toEqual(
    parseModelTable(w.config.models)
      .map((m) => k.bulkBacklog(m.name))
      .sort(),
  );
  for (const t of lists) {
    expect(Number(t.metadata.listLength)).toBeGreaterThan(0);
    expect(t.metadata.activationListLength).toBe('0');
  }
  const triggers = all.filter((t) => t.type === `${kind}-streams`);
  for (const t of triggers) expect(t.metadata.consumerGroup).toBe(w.config.group);
  const lag = triggers.filter((t) => t.metadata.lagCount !== undefined);
  // Exactly the worker's streams: one lag trigger per model and lane, no strays.
  expect(lag.map((t) => t.metadata.stream).sort()).toEqual(expectedStreams(w.config).sort());
  expect(new Set(triggers.map((t) => t.metadata.stream))).toEqual(
    new Set(expectedStreams(w.config)),
  );
  for (const t of lag) {
    expect(Number(t.metadata.lagCount)).toBeGreaterThan(0);
    // KEDA activates when the lag is above activationLagCount: 0 wakes on one entry.
    expect(t.metadata.activationLagCount).toBe('0');
  }
  return triggers;
}

describe('helm chart', () => {
  it('has a ci values file for every documented value set', () => {
    const files = readdirSync(CI_DIR).filter((f) => f.endsWith('-values.yaml'));
    expect(files.sort()).toEqual(VALUE_SETS.map((s) => `${s}-values.yaml`).sort());
  });

  it.each(VALUE_SETS)('passes helm lint --strict with ci/%s-values.yaml', (set) => {
    const r = helm(['lint', '--strict', CHART_DIR, '-f', ciFile(set)]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  describe.each(VALUE_SETS)('rendered with ci/%s-values.yaml', (set) => {
    it('passes the workload checks (settings, probes, grace period, CPU, read-only root)', () => {
      checkWorkload(render(set));
    });

    it('derives the CPU request from threads x intra-op threads unless resources are set', () => {
      const w = checkWorkload(render(set));
      const explicit = ciValues(set).resources !== undefined;
      const cpu = cores(w.worker.resources.requests.cpu);
      const busy = w.config.threads! * w.config.intraOpThreads;
      if (explicit) expect(cpu).toBeGreaterThanOrEqual(busy);
      else expect(cpu).toBe(busy);
      // No CPU limit by default: throttling stalls ONNX Runtime's thread pool.
      if (!explicit) expect(w.worker.resources.limits?.cpu).toBeUndefined();
    });

    it('autoscales with at most one autoscaler, which owns the replica count', () => {
      const objects = workerObjects(render(set));
      const w = checkWorkload(objects);
      const scalers = objects.filter(
        (o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject',
      );
      expect(scalers.length).toBeLessThanOrEqual(1);
      for (const a of scalers) {
        expect(a.spec.scaleTargetRef.name).toBe(w.deployment.metadata.name);
        expect(w.deployment.spec.replicas).toBeUndefined();
      }
      if (!scalers.length) expect(w.deployment.spec.replicas).toBeGreaterThan(0);
    });

    it('hands concurrency and worker values to the worker under the same names', () => {
      const w = checkWorkload(render(set));
      const values = ciValues(set) as Json;
      const config = w.config as Record<string, unknown>;
      for (const block of [values.concurrency ?? {}, values.worker ?? {}]) {
        for (const [key, value] of Object.entries(block)) {
          if (key === 'replicas') continue;
          expect(key in SETTINGS, `${key} is a setting`).toBe(true);
          expect(config[key], key).toEqual(value);
        }
      }
    });

    const kedaOn = (ciValues(set) as Json).autoscaling?.keda?.enabled === true;
    it(
      kedaOn
        ? 'points KEDA triggers at the streams and group the worker reads'
        : 'renders no KEDA objects when KEDA is off',
      () => {
        const objects = render(set);
        if (kedaOn) checkKeda(objects, checkWorkload(objects));
        else expect(objects.filter((o) => String(o.apiVersion).startsWith('keda.sh/'))).toEqual([]);
      },
    );
  });

  it('with default values changes no setting except the ones Kubernetes needs', () => {
    const w = checkWorkload(render('default'));
    const defaults = loadConfig({});
    // THREADS (explicit, see values.yaml), the model table, the cache volume, the Redis URL.
    const chosen = new Set(['threads', 'models', 'modelCacheDir', 'redisUrl']);
    for (const key of Object.keys(SETTINGS) as (keyof Config)[]) {
      if (!chosen.has(key)) expect(w.config[key], key).toEqual(defaults[key]);
    }
  });

  it('KEDA with a password and a private CA authenticates through a TriggerAuthentication', () => {
    const objects = render('keda-on');
    const w = checkWorkload(objects);
    const triggers = checkKeda(objects, w);
    expect(triggers.some((t) => t.metadata.pendingEntriesCount !== undefined)).toBe(true);
    // The default target is what one pod holds: the worker's own formula.
    const held = String(maxHeldEntries(w.config, w.config.threads!));
    const pending = triggers.filter((t) => t.metadata.pendingEntriesCount !== undefined);
    expect(new Set(pending.map((t) => t.metadata.pendingEntriesCount))).toEqual(new Set([held]));
    const so = only(objects, 'ScaledObject');
    const lists = so.spec.triggers.filter((t: Json) => t.type === 'redis');
    expect(new Set(lists.map((t: Json) => t.metadata.listLength))).toEqual(new Set([held]));
    for (const t of lists) expect(t.authenticationRef).toEqual(triggers[0].authenticationRef);
    const auth = only(objects, 'TriggerAuthentication');
    const params = Object.fromEntries(auth.spec.secretTargetRef.map((r: Json) => [r.parameter, r]));
    expect(Object.keys(params).sort()).toEqual(['ca', 'password', 'tls', 'username']);
    const chartSecret = secretKeys(named(objects, 'Secret', params.password.name)!);
    expect(chartSecret[params.username.key]).toBe('fleet');
    expect(chartSecret[params.password.key]).toBe('s3cret');
    expect(chartSecret[params.tls.key]).toBe('enable');
    // enableTLS in metadata and tls in the TriggerAuthentication are mutually exclusive in KEDA.
    for (const t of triggers) expect(t.metadata.enableTLS).toBeUndefined();
    expect(triggers[0].metadata.address).toBe('redis.data.svc:6380');
    expect(triggers[0].metadata.databaseIndex).toBe('2');
    // The worker gets the CA file from the mounted Secret.
    const ca = w.config.redisTlsCaFile!;
    expect(ca).toBeDefined();
    const mount = w.worker.volumeMounts.find((m: Json) => ca.startsWith(`${m.mountPath}/`));
    expect(mount, 'REDIS_TLS_CA_FILE is on a mounted volume').toBeDefined();
  });

  it('Sentinel: the worker and KEDA find the master through the sentinels', () => {
    const objects = render('sentinel');
    const w = checkWorkload(objects);
    expect(w.config.redisSentinels).toBe(
      [0, 1, 2].map((i) => `redis-node-${i}.redis-headless:26379`).join(','),
    );
    expect(w.config.redisSentinelName).toBe('mymaster');
    const ref = w.worker.env.find((e: Json) => e.name === 'REDIS_SENTINEL_PASSWORD');
    expect(ref.valueFrom.secretKeyRef).toEqual({
      name: 'redis-sentinel',
      key: 'sentinel-password',
    });
    const triggers = checkKeda(objects, w);
    for (const t of triggers) expect(t.metadata.databaseIndex).toBe('1');
    const auth = only(objects, 'TriggerAuthentication');
    const params = Object.fromEntries(auth.spec.secretTargetRef.map((r: Json) => [r.parameter, r]));
    expect(Object.keys(params).sort()).toEqual(['password', 'sentinelPassword', 'username']);
    expect(params.sentinelPassword).toEqual({
      parameter: 'sentinelPassword',
      name: 'redis-sentinel',
      key: 'sentinel-password',
    });
  });

  it('Sentinel and Cluster: the gateway and the console get the same Redis settings as the workers', () => {
    const frontDoors = join(mkdtempSync(join(tmpdir(), 'sb-front-')), 'values.yaml');
    writeFileSync(frontDoors, 'gateway:\n  enabled: true\nconsole:\n  enabled: true\n');
    const redisEnv = (set: string) => {
      const objects = helmTemplate([ciFile(set), frontDoors]);
      return objects
        .filter((o) => o.kind === 'Deployment')
        .map((d) => {
          const [container] = d.spec.template.spec.containers;
          const env = containerEnv(objects, container);
          const names = ['REDIS_URL', 'REDIS_CLUSTER', 'REDIS_SENTINELS', 'REDIS_SENTINEL_NAME'];
          return {
            container: container.name,
            ...Object.fromEntries(names.map((n) => [n, env.get(n)])),
            sentinelPassword: env.has('REDIS_SENTINEL_PASSWORD'),
          };
        });
    };
    const sentinels = [0, 1, 2].map((i) => `redis-node-${i}.redis-headless:26379`).join(',');
    const viaSentinels = redisEnv('sentinel');
    expect(viaSentinels.map((c) => c.container).sort()).toEqual(['console', 'gateway', 'worker']);
    for (const c of viaSentinels)
      expect(c, c.container).toMatchObject({
        REDIS_URL: 'redis://fleet:s3cret@unused:6379/1',
        REDIS_SENTINELS: sentinels,
        REDIS_SENTINEL_NAME: 'mymaster',
        sentinelPassword: true,
      });
    const onCluster = redisEnv('cluster');
    expect(onCluster).toHaveLength(3);
    for (const c of onCluster) expect(c, c.container).toMatchObject({ REDIS_CLUSTER: 'true' });
  });

  it('the gateway and the console may each log in as their own ACL user (their own REDIS_URL Secret)', () => {
    const values = join(mkdtempSync(join(tmpdir(), 'sb-users-')), 'values.yaml');
    writeFileSync(
      values,
      [
        'gateway:',
        '  enabled: true',
        '  redis: {existingSecret: sb-gateway-redis, existingSecretKey: url}',
        'console:',
        '  enabled: true',
        '  redis: {existingSecret: sb-operator-redis, existingSecretKey: url}',
        '',
      ].join('\n'),
    );
    const urlRef = (objects: K8sObject[]) =>
      Object.fromEntries(
        objects
          .filter((o) => o.kind === 'Deployment')
          .map((d) => {
            const [c] = d.spec.template.spec.containers;
            const ref = c.env.find((e: Json) => e.name === 'REDIS_URL').valueFrom.secretKeyRef;
            return [c.name, `${ref.name}/${ref.key}`];
          }),
      );
    const own = urlRef(helmTemplate([ciFile('sentinel'), values]));
    expect(own).toEqual({
      worker: urlRef(render('sentinel')).worker,
      gateway: 'sb-gateway-redis/url',
      console: 'sb-operator-redis/url',
    });
  });

  it('Cluster: triggers of the cluster kinds on the keys under the hash tag {keyPrefix}', () => {
    const objects = render('cluster');
    const w = checkWorkload(objects);
    expect(w.config.redisCluster).toBe(true);
    expect(w.config.keyPrefix).toBe('{sb}');
    const triggers = checkKeda(objects, w);
    expect(triggers.map((t) => t.metadata.stream)).toContain('{sb}:req:minilm');
    expect(triggers[0].metadata.addresses).toBe('redis-cluster:6379');
  });

  it('existing Secrets: the chart renders no Secret and reads the ones named in values', () => {
    const objects = render('existing-secrets');
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const w = checkWorkload(objects);
    const ref = (name: string) =>
      w.worker.env.find((e: Json) => e.name === name).valueFrom.secretKeyRef;
    expect(ref('REDIS_URL')).toEqual({ name: 'streambed-redis', key: 'url' });
    expect(ref('PG_URL')).toEqual({ name: 'streambed-pg', key: 'url' });
    const auth = only(objects, 'TriggerAuthentication');
    expect(auth.spec.secretTargetRef.map((r: Json) => r.name)).toContain('streambed-redis-keda');
  });

  it('postgres sink: PG_URL from the chart Secret and the sink settings in the ConfigMap', () => {
    const objects = render('postgres-sink-on');
    const w = checkWorkload(objects);
    expect(w.env.get('PG_URL')).toMatch(/^postgres:\/\//);
    expect(w.config.pgPoolSize).toBe(8);
    expect(w.config.sinkIndex).toBe('hnsw');
    expect(w.config.allowRemoteModels).toBe(false);
    // The init step fills the same cache volume the worker reads.
    const init = w.pod.initContainers[0];
    const initCache = init.volumeMounts.find((m: Json) => m.mountPath === w.config.modelCacheDir);
    const workerCache = w.worker.volumeMounts.find(
      (m: Json) => m.mountPath === w.config.modelCacheDir,
    );
    expect(initCache.name).toBe(workerCache.name);
    expect(only(objects, 'PersistentVolumeClaim').spec.accessModes).toContain('ReadWriteMany');
  });

  it('NOTES.txt says how to watch the fleet', () => {
    const r = helm(['install', 'sb', CHART_DIR, '--dry-run=client', '-f', ciFile('default')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('streambed status');
  });

  describe('rejects invalid values', () => {
    const rejects = (values: unknown, message: RegExp) => {
      const file = valuesFile(values);
      try {
        const r = helm(['template', 'sb', CHART_DIR, '-f', file.path]);
        expect(r.status, 'helm template exits non-zero').not.toBe(0);
        expect(r.stderr).toMatch(message);
      } finally {
        file.dispose();
      }
    };
    const model = { name: 'minilm', ref: 'Xenova/all-MiniLM-L6-v2' };

    it('threads: 0', () => rejects({ concurrency: { threads: 0 } }, /threads/));
    it('an unknown model option', () =>
      rejects({ models: [{ ...model, quantize: 'int4' }] }, /quantize/));
    it('a model option value the worker does not accept', () =>
      rejects({ models: [{ ...model, dtype: 'int4' }] }, /dtype/));
    it('a model name that cannot be a stream key part', () =>
      rejects({ models: [{ ...model, name: 'MiniLM/v2' }] }, /name/));
    it('the same model name twice', () => rejects({ models: [model, model] }, /twice/));
    it('a typo in a top-level key', () => rejects({ concurency: { threads: 2 } }, /concurency/));
    it('a CPU request below threads x intra-op threads', () =>
      rejects(
        { concurrency: { threads: 4, intraOpThreads: 2 }, resources: { requests: { cpu: '4' } } },
        /below concurrency.threads x concurrency.intraOpThreads = 8/,
      ));
    it('HPA and KEDA together', () =>
      rejects({ autoscaling: { hpa: { enabled: true }, keda: { enabled: true } } }, /enable one/));
    it('Cluster with a reply pattern outside the fleet slot', () =>
      rejects(
        { redis: { cluster: { enabled: true } }, worker: { replyToPattern: 'app:reply:*' } },
        /must begin with "\{sb\}:"/,
      ));
    it('Cluster and Sentinel together', () =>
      rejects(
        { redis: { cluster: { enabled: true }, sentinel: { hosts: ['s:26379'] } } },
        /choose one/,
      ));
  });

  it('gives a remote model its key from a Secret, named in MODELS only by its env var', () => {
    const deployment = only(render('remote-provider'), 'Deployment');
    const worker = deployment.spec.template.spec.containers.find((c: Json) => c.name === 'worker');
    const key = worker.env.find((e: Json) => e.name === 'OPENAI_API_KEY');
    expect(key.valueFrom.secretKeyRef).toEqual({ name: 'openai', key: 'api-key' });
    const models = only(render('remote-provider'), 'ConfigMap').data!.MODELS!;
    const oa = parseModelTable(models).find((m) => m.name === 'oa');
    expect(oa?.remote).toMatchObject({
      apiKeyEnv: 'OPENAI_API_KEY',
      rpm: 3000,
      tpm: 1_000_000,
      maxInputs: 256,
      dimensions: 512,
    });
  });

  it('accepts every model option value the schema allows (the worker parses them)', () => {
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const props = schema.properties.models.items.properties;
    for (const dtype of props.dtype.enum) parseModelTable(`m=org/model;dtype=${dtype}`);
    for (const pooling of props.pooling.enum) parseModelTable(`m=org/model;pooling=${pooling}`);
    parseModelTable(`m=org/model;maxTokens=${props.maxTokens.minimum}`);
    parseModelTable(`m=org/model;maxTokens=${props.maxTokens.maximum}`);
    for (const chunk of [true, false]) parseModelTable(`m=org/model;chunk=${chunk}`);
    parseModelTable(`m=org/model;chunkWindow=${props.chunkWindow.minimum};chunkOverlap=0`);
    parseModelTable(`m=org/model;chunkWindow=${props.chunkWindow.maximum}`);
    const size = props.matryoshka.items;
    parseModelTable(`m=org/model;matryoshka=${size.minimum}|${size.maximum}`);
  });
});

describe('kustomize base', () => {
  it('renders with kubectl kustomize and passes the same checks as the chart', () => {
    const objects = kustomizeBuild();
    const w = checkWorkload(objects);
    expect(cores(w.worker.resources.requests.cpu)).toBe(
      w.config.threads! * w.config.intraOpThreads,
    );
    expect(w.env.has('REDIS_URL')).toBe(true);
  });
});

describe('yamllint', () => {
  // CI installs yamllint (apt-get install -y yamllint), and there a missing binary fails;
  // on a laptop without it the check is skipped.
  it.runIf(yamllintInstalled() || Boolean(process.env.CI))('passes on deploy/ and charts/', () => {
    const r = yamllint(['-c', 'deploy/.yamllint', '--strict', 'deploy', 'charts']);
    expect(r, 'yamllint is installed').toBeDefined();
    expect(r!.status, r!.stdout + r!.stderr).toBe(0);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  // Instructions of the final stage (the image), continuation lines joined.
  const lines = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const finalStage = lines.slice(lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true));
  const instruction = (name: string) =>
    finalStage
      .filter((l) => l.toUpperCase().startsWith(`${name} `))
      .map((l) => l.slice(name.length).trim());
  const execForm = (name: string): string[] => {
    const found = instruction(name);
    if (!found.length) return [];
    const value = JSON.parse(found.at(-1)!) as unknown;
    expect(
      Array.isArray(value),
      `${name} uses the exec (JSON) form, so signals reach the process`,
    ).toBe(true);
    return value as string[];
  };

  it('runs `streambed worker`, the command the README runs locally, under an init', () => {
    let argv = [...execForm('ENTRYPOINT'), ...execForm('CMD')];
    // An init as PID 1 forwards SIGTERM so the worker drains; strip it to compare the command.
    if (/(^|\/)(tini|dumb-init)$/.test(argv[0] ?? '')) {
      argv = argv.slice(1);
      if (argv[0] === '--') argv = argv.slice(1);
    } else {
      expect(dockerfile).toMatch(/--init/);
    }
    expect(argv).toEqual(['streambed', 'worker']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin.streambed).toBe('bin/streambed.js');
    // `streambed` on PATH is the package's bin.
    expect(dockerfile).toMatch(/ln -s \/app\/bin\/streambed\.js \/usr\/local\/bin\/streambed/);
    const readme = join(ROOT, 'README.md');
    if (existsSync(readme)) expect(readFileSync(readme, 'utf8')).toMatch(/streambed(\.js)? worker/);
  });

  it('runs as a non-root user on a slim Node 20 base with production dependencies only', () => {
    const user = instruction('USER').at(-1);
    expect(user, 'USER is set').toBeDefined();
    expect(user).not.toMatch(/^(0|root)(:|$)/);
    expect(dockerfile).toMatch(/node:20-slim/);
    expect(dockerfile).toMatch(/npm ci\b/);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/COPY[^\n]*\.npmrc|COPY \. \./);
  });
});
