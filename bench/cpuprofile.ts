/**
 * Reads V8 .cpuprofile files (node --cpu-prof writes one per thread) and
 * sums self time by category: where a thread's time went. Native code (ONNX
 * Runtime's run) shows up as self time of the JavaScript frame that called it.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ThreadProfile {
  file: string;
  /** Wall time covered by the profile, ms. */
  wallMs: number;
  /** Self ms by category, largest first. */
  categories: Array<[string, number]>;
  /** Self ms by function (name url:line), largest first. */
  top: Array<[string, number]>;
}

/** Ordered: the first rule that matches a frame names its category. */
const RULES: Array<[string, (f: ProfileNode['callFrame']) => boolean]> = [
  ['idle', (f) => f.functionName === '(idle)'],
  // A piscina thread with no task blocks in Atomics.wait: idle, though V8 sees it running.
  ['waiting for a task', (f) => f.functionName === 'atomicsWaitLoop'],
  ['gc', (f) => f.functionName === '(garbage collector)'],
  ['ort run (native)', (f) => f.url.includes('onnxruntime-node') && f.functionName === 'run'],
  ['onnxruntime js', (f) => f.url.includes('onnxruntime')],
  ['tokenizer', (f) => f.url.includes('tokenizers') || /tokeniz/i.test(f.url)],
  ['transformers.js', (f) => f.url.includes('@huggingface/transformers')],
  ['embed core (tensors, pooling)', (f) => f.url.includes('workers/embed-core')],
  ['piscina / messaging', (f) => f.url.includes('piscina') || f.url.includes('worker_threads')],
  ['ioredis', (f) => f.url.includes('ioredis') || f.url.includes('redis-parser')],
  ['msgpackr', (f) => f.url.includes('msgpackr')],
  ['pino', (f) => f.url.includes('pino')],
  ['streambed main thread', (f) => f.url.includes('/dist/src/')],
  ['node internals', (f) => f.url.startsWith('node:') || f.url === ''],
];

function categoryOf(f: ProfileNode['callFrame']): string {
  for (const [name, test] of RULES) if (test(f)) return name;
  return 'other';
}

/**
 * Self time by category and function, counting only samples inside
 * `window` ([start, end] in the profile's clock: CLOCK_MONOTONIC microseconds,
 * what `process.hrtime.bigint() / 1000n` reads) when one is given.
 */
export function readThreadProfile(file: string, window?: [number, number]): ThreadProfile {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    const delta = p.timeDeltas[i] ?? 0;
    t += delta;
    if (window && (t < window[0] || t > window[1])) return;
    self.set(id, (self.get(id) ?? 0) + delta);
  });
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of self) {
    const f = byId.get(id)?.callFrame;
    if (!f) continue;
    const ms = us / 1000;
    const cat = categoryOf(f);
    categories.set(cat, (categories.get(cat) ?? 0) + ms);
    const where = f.url
      ? `${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`
      : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    functions.set(key, (functions.get(key) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]): [string, number] => [k, Math.round(v)]);
  return {
    file: path.basename(file),
    wallMs: Math.round((window ? window[1] - window[0] : p.endTime - p.startTime) / 1000),
    categories: sorted(categories),
    top: sorted(functions).slice(0, 12),
  };
}

export function readProfileDir(dir: string, window?: [number, number]): ThreadProfile[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()
    .map((f) => readThreadProfile(path.join(dir, f), window));
}
