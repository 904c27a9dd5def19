/**
 * Reading rendered Kubernetes manifests the way the cluster would: the one
 * object of a kind, an object by name, a Secret's keys, a container's
 * assembled env, and the config a streambed process would load from it.
 * Shared by the chart tests of the workers and of the gateway.
 */
import { expect } from 'vitest';

import { type Config, loadConfig } from '../../src/config/load.js';
import type { K8sObject } from './helm.js';

// Rendered manifests are untyped JSON; the checks assert their shape as they read it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

export function only(objects: K8sObject[], kind: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind);
  expect(
    found.map((o) => o.metadata.name),
    `one ${kind}`,
  ).toHaveLength(1);
  return found[0]!;
}

export function named(objects: K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

export function secretKeys(secret: K8sObject): Record<string, string> {
  const decoded = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
  return { ...decoded, ...(secret.stringData ?? {}) };
}

/**
 * The env a container gets, as Kubernetes would assemble it from the rendered
 * objects: envFrom ConfigMaps/Secrets and env entries. Values from Secrets that
 * are not rendered (existing Secrets) are `undefined`: present, value unknown.
 */
export function containerEnv(
  objects: K8sObject[],
  container: Json,
): Map<string, string | undefined> {
  const env = new Map<string, string | undefined>();
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
    const source = named(objects, kind, ref.name);
    // envFrom an object we cannot see would hide its keys from the settings check.
    expect(source, `envFrom ${kind} ${ref.name} is rendered`).toBeDefined();
    const data = kind === 'Secret' ? secretKeys(source!) : (source!.data ?? {});
    for (const [k, v] of Object.entries(data)) env.set(k, v);
  }
  for (const e of container.env ?? []) {
    if ('value' in e) env.set(e.name, String(e.value));
    else if (e.valueFrom?.fieldRef) env.set(e.name, 'sb-worker-0');
    else if (e.valueFrom?.configMapKeyRef) {
      const { name, key } = e.valueFrom.configMapKeyRef;
      env.set(e.name, named(objects, 'ConfigMap', name)?.data?.[key]);
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key, optional } = e.valueFrom.secretKeyRef;
      const secret = named(objects, 'Secret', name);
      if (secret) {
        const value = secretKeys(secret)[key];
        if (!optional) expect(value, `Secret ${name} has key ${key}`).toBeDefined();
        if (value !== undefined) env.set(e.name, value);
      } else {
        env.set(e.name, undefined);
      }
    } else {
      env.set(e.name, undefined);
    }
  }
  return env;
}

/** What the worker would load from that env (unknown secret values replaced by valid stand-ins). */
export function workerConfig(env: Map<string, string | undefined>): Config {
  const standIns: Record<string, string> = {
    REDIS_URL: 'redis://stand-in:6379',
    PG_URL: 'postgres://stand-in/db',
  };
  const plain: NodeJS.ProcessEnv = {};
  for (const [k, v] of env) plain[k] = v ?? standIns[k] ?? 'stand-in';
  return loadConfig(plain);
}
