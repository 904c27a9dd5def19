/**
 * `npm run bench:gateway [-- --quick]`: the OpenAI-compatible gateway under
 * many concurrent clients (bench/cases/gateway-load.ts). One worker with
 * the no-op core and one `streambed serve`; the SDK's `embed` (no HTTP) and
 * the gateway, through a lean keep-alive HTTP client and through the
 * official `openai` client (whose own CPU per request is several times
 * the gateway's, so on a shared machine it measures the client), take turns in slices of
 * SLICE_S seconds (the machine is shared: a burst of someone else's load
 * then falls on both paths, not on one), the same number of clients, one
 * input per request. Prints and records requests/s, p50/p99, the
 * gateway/SDK ratios measured in this run, errors and the gateway's CPU
 * and peak RSS.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Redis } from 'ioredis';
import OpenAI from 'openai';

import { StreambedClient } from '../src/client/client.js';
import {
  closedLoop,
  combine,
  type LoadResult,
  openLoop,
  rawEmbedder,
  startGatewayFleet,
  startHttpFloor,
} from './cases/gateway-load.js';
import { deletePrefix } from './cases/redis-util.js';
import { readProfileDir } from './cpuprofile.js';
import { codeState, loadavg } from './machine.js';
import { ensureModel } from './model.js';
import { writeBenchSection, writeJson } from './report.js';
import { round } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Seconds of one turn of one path. */
const SLICE_S = 5;
const TEXT = 'a short page of text about nothing in particular, for the no-op core';

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      clients: { type: 'string', default: '200' },
      seconds: { type: 'string' },
      'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
      'no-markdown': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      // e.g. '--max-semi-space-size=64': flags for the gateway's node (GC tuning).
      'gateway-node-flags': { type: 'string', default: '' },
      // Another checkout (built): its gateway serves, for a before/after on one machine.
      'gateway-from': { type: 'string' },
      // Open-loop rates, as fractions of the gateway's closed-loop requests/s in this run.
      'open-rates': { type: 'string', default: '0.25,0.5,0.75' },
      // minilm: the worker runs the generated MiniLM-shaped model (q8) instead of the no-op core.
      model: { type: 'string', default: 'noop' },
    },
    strict: true,
  });
  const clients = Number(v.clients);
  const seconds = Number(v.seconds ?? (v.quick ? 8 : 30));
  if (!(clients >= 1 && seconds > 0)) throw new Error('--clients and --seconds must be positive');
  const command = `npm run bench:gateway${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  console.log(command);

  const loadBefore = loadavg()[0] ?? 0;
  const prefix = `sbbench-gw-${randomBytes(3).toString('hex')}`;
  const redis = new Redis(v['redis-url'], { maxRetriesPerRequest: 3 });
  // A key with a rate limit, as a production gateway has: authentication and the
  // fleet-wide limit are part of the measured path (the limit is never reached).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-gw-'));
  const keysFile = path.join(tmp, 'keys');
  fs.writeFileSync(keysFile, `${BENCH_KEY} bench 100000000\n`);
  const profDir = path.join(tmp, 'prof');
  if (v.model !== 'noop' && v.model !== 'minilm') throw new Error('--model is noop or minilm');
  const modelRef =
    v.model === 'minilm'
      ? `${(await ensureModel('.streambed/bench/models', 'q8')).dir};dtype=q8`
      : 'noop:384';
  const fleet = await startGatewayFleet(v['redis-url'], prefix, {
    keysFile,
    modelRef,
    ...(v['gateway-from'] && { bin: path.resolve(v['gateway-from'], 'bin/streambed.js') }),
    execArgv: [
      ...v['gateway-node-flags'].split(' ').filter(Boolean),
      ...(v['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
    ],
  });
  const sdk = new StreambedClient({ redis: v['redis-url'], prefix, maxBacklog: 1_000_000 });
  const api = new OpenAI({
    baseURL: `http://127.0.0.1:${fleet.port}/v1`,
    apiKey: BENCH_KEY,
    maxRetries: 0,
  });
  const viaSdk = () => sdk.embed([TEXT], { model: 'bench' }).then(() => undefined);
  const raw = rawEmbedder(fleet.port, clients, BENCH_KEY);
  const viaGateway = () =>
    raw('bench', TEXT).then((v) => {
      if (v.length !== 384) throw new Error('wrong vector length');
    });
  const { floor, port: floorPort } = await startHttpFloor();
  const rawFloor = rawEmbedder(floorPort, clients, BENCH_KEY);
  const viaFloor = () => rawFloor('bench', TEXT).then(() => undefined);
  const viaOpenai = () =>
    api.embeddings.create({ model: 'bench', input: TEXT }).then((r) => {
      if (r.data[0]?.embedding.length !== 384) throw new Error('wrong vector length');
    });
  try {
    // Warm both paths (connections, JIT) before measuring.
    await closedLoop(clients, 2, viaSdk);
    await closedLoop(clients, 2, viaGateway);
    await closedLoop(clients, 2, viaOpenai);
    const slices = Math.max(1, Math.round(seconds / SLICE_S));
    const paths = { sdk: viaSdk, gateway: viaGateway, openai: viaOpenai };
    const runs: Record<keyof typeof paths, LoadResult[]> = { sdk: [], gateway: [], openai: [] };
    // CPU seconds of each process while each path ran.
    const cpu = { sdk: { ...NO_CPU }, gateway: { ...NO_CPU }, openai: { ...NO_CPU } };
    for (let i = 0; i < slices; i++) {
      const order = Object.keys(paths) as Array<keyof typeof paths>;
      for (const p of i % 2 === 0 ? order : order.reverse()) {
        const g0 = fleet.gateway.cpuSeconds() ?? 0;
        const w0 = fleet.worker.cpuSeconds() ?? 0;
        runs[p].push(await closedLoop(clients, seconds / slices, paths[p]));
        cpu[p].gateway += (fleet.gateway.cpuSeconds() ?? 0) - g0;
        cpu[p].worker += (fleet.worker.cpuSeconds() ?? 0) - w0;
      }
    }
    const gwCpu = cpu.gateway.gateway;
    const sdkRun = combine(runs.sdk);
    const gwRun = combine(runs.gateway);
    const openaiRun = combine(runs.openai);
    line('sdk embed', sdkRun);
    line('gateway', gwRun);
    line('openai', openaiRun);
    const open = await sameLoad(
      v['open-rates'].split(',').map(Number),
      gwRun.perSecond,
      v.quick ? 4 : 10,
      { sdk: viaSdk, gateway: viaGateway, floor: viaFloor },
      {
        gateway: () => fleet.gateway.cpuSeconds() ?? 0,
        worker: () => fleet.worker.cpuSeconds() ?? 0,
        floor: () => floor.cpuSeconds() ?? 0,
      },
    );
    const result = {
      command,
      startedAt: new Date().toISOString(),
      code: codeState(ROOT),
      machine: { nproc: os.availableParallelism(), loadBefore, loadAfter: loadavg()[0] ?? 0 },
      clients,
      seconds,
      model: modelRef.startsWith('noop') ? 'noop:384' : 'minilm (generated, q8)',
      sdk: { ...sdkRun, samples: undefined },
      gateway: { ...gwRun, samples: undefined },
      openai: { ...openaiRun, samples: undefined },
      gatewayCores: round(gwCpu / gwRun.seconds, 2),
      cpuMs: {
        gatewayPerRequest: round((1000 * gwCpu) / gwRun.requests, 3),
        workerPerEntry: round((1000 * cpu.gateway.worker) / gwRun.requests, 3),
        workerPerEntrySdk: round((1000 * cpu.sdk.worker) / sdkRun.requests, 3),
      },
      gatewayPeakRssMb: fleet.gateway.peakRssMb() ?? null,
      open,
      ratios: {
        throughput: round(gwRun.perSecond / sdkRun.perSecond, 2),
        p50: round((gwRun.latency?.p50Ms ?? 0) / (sdkRun.latency?.p50Ms ?? 1), 2),
        p99: round((gwRun.latency?.p99Ms ?? 0) / (sdkRun.latency?.p99Ms ?? 1), 2),
      },
    };
    const ms = result.cpuMs;
    console.log(
      `CPU ms: gateway ${ms.gatewayPerRequest} per request, worker ${ms.workerPerEntry} per entry (${ms.workerPerEntrySdk} on the SDK path): gateway/worker ${round(ms.gatewayPerRequest / ms.workerPerEntry, 2)}`,
    );
    console.log(
      `gateway/sdk: throughput ${result.ratios.throughput}, p50 ${result.ratios.p50}, p99 ${result.ratios.p99}; gateway ${result.gatewayCores} cores, peak RSS ${result.gatewayPeakRssMb} MiB`,
    );
    const name = `gateway${v.model === 'minilm' ? '-minilm' : ''}${v.quick ? '-quick' : ''}`;
    console.log(`wrote ${await writeJson(result, name)}`);
    if (!v['no-markdown']) console.log(`wrote ${await writeBenchSection(name, markdown(result))}`);
    const openErrors = open.reduce(
      (n, o) => n + o.sdk.errors + o.gateway.errors + o.floor.errors,
      0,
    );
    if (sdkRun.errors + gwRun.errors + openaiRun.errors + openErrors > 0) process.exitCode = 1;
  } finally {
    await sdk.close();
    await Promise.all([fleet.gateway.stop(), fleet.worker.stop(), floor.stop()]);
    await deletePrefix(redis, prefix);
    await redis.quit();
    fs.rmSync(keysFile, { force: true });
    if (v['cpu-prof']) printProfile(profDir);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

interface SameLoad {
  perSecond: number;
  sdk: Omit<LoadResult, 'samples'>;
  gateway: Omit<LoadResult, 'samples'>;
  floor: Omit<LoadResult, 'samples'>;
  /** Gateway p50 minus the SDK's at this load, ms. */
  p50OverMs: number;
  /**
   * CPU ms at this rate: the gateway per request and the worker per entry in
   * the same gateway runs (the cores each needs for the same traffic), the
   * worker per entry on the SDK path, the bare Node HTTP server
   * (bench/http-floor.ts) per request. Per-request costs fall as the rate
   * rises (more work per wake-up), so they are compared at one rate.
   */
  cpuMs: { gateway: number; worker: number; workerSdk: number; floor: number };
}

type PathName = 'sdk' | 'gateway' | 'floor';
type ProcName = 'gateway' | 'worker' | 'floor';

/**
 * Both paths at the same offered load (open loop), at fractions of the
 * gateway's closed-loop throughput: the gateway's latency over the SDK's is
 * then what it adds, not queueing at saturation. Each rate runs the paths in
 * turn, twice, in opposite orders; the bare HTTP floor runs beside them for
 * its CPU.
 */
async function sameLoad(
  fractions: number[],
  capacity: number,
  seconds: number,
  paths: Record<PathName, () => Promise<void>>,
  cpuOf: Record<ProcName, () => number>,
): Promise<SameLoad[]> {
  const out: SameLoad[] = [];
  const procs = Object.keys(cpuOf) as ProcName[];
  for (const f of fractions.filter((x) => x > 0)) {
    const perSecond = Math.max(1, Math.round((f * capacity) / 50) * 50);
    const runs: Record<PathName, LoadResult[]> = { sdk: [], gateway: [], floor: [] };
    // CPU seconds of each process while each path ran.
    const cpu = Object.fromEntries(
      (Object.keys(paths) as PathName[]).map((p) => [p, { gateway: 0, worker: 0, floor: 0 }]),
    ) as Record<PathName, Record<ProcName, number>>;
    for (const p of ['sdk', 'gateway', 'floor', 'floor', 'gateway', 'sdk'] as const) {
      const before = procs.map((c) => cpuOf[c]());
      runs[p].push(await openLoop(perSecond, seconds / 2, paths[p]));
      procs.forEach((c, i) => (cpu[p][c] += cpuOf[c]() - (before[i] as number)));
    }
    const [sdk, gateway, floor] = [combine(runs.sdk), combine(runs.gateway), combine(runs.floor)];
    const perItem = (s: number, r: LoadResult) => round((1000 * s) / Math.max(1, r.requests), 3);
    const cpuMs = {
      gateway: perItem(cpu.gateway.gateway, gateway),
      worker: perItem(cpu.gateway.worker, gateway),
      workerSdk: perItem(cpu.sdk.worker, sdk),
      floor: perItem(cpu.floor.floor, floor),
    };
    const p50OverMs = round((gateway.latency?.p50Ms ?? 0) - (sdk.latency?.p50Ms ?? 0), 2);
    console.log(`  same load ${perSecond} req/s (open loop):`);
    line('sdk embed', sdk);
    line('gateway', gateway);
    line('http floor', floor);
    console.log(
      `  CPU ms: gateway ${cpuMs.gateway} per request, worker ${cpuMs.worker} per entry (${cpuMs.workerSdk} on the SDK path), bare Node HTTP ${cpuMs.floor} per request`,
    );
    const bare = (r: LoadResult) => ({ ...r, samples: undefined }) as Omit<LoadResult, 'samples'>;
    out.push({
      perSecond,
      sdk: bare(sdk),
      gateway: bare(gateway),
      floor: bare(floor),
      p50OverMs,
      cpuMs,
    });
  }
  return out;
}

const BENCH_KEY = 'sk-bench-gateway';
const NO_CPU = { gateway: 0, worker: 0 };

/** The gateway's main-thread profile (whole run: every path's slices), by category and function. */
function printProfile(dir: string): void {
  console.log(`gateway profile kept in ${dir}`);
  for (const t of readProfileDir(dir)) {
    console.log(`gateway profile ${t.file} (${t.wallMs} ms wall), self ms:`);
    for (const [name, ms] of t.categories) console.log(`  ${String(ms).padStart(7)}  ${name}`);
    console.log('  top functions:');
    for (const [name, ms] of t.top) console.log(`  ${String(ms).padStart(7)}  ${name}`);
  }
}

function line(label: string, r: LoadResult): void {
  const l = r.latency;
  console.log(
    `  ${label.padEnd(10)} ${r.perSecond.toFixed(0).padStart(6)} req/s  p50 ${l?.p50Ms.toFixed(1)} ms  p99 ${l?.p99Ms.toFixed(1)} ms  errors ${r.errors}${r.errorSamples.length ? ` (${r.errorSamples[0]})` : ''}`,
  );
}

function markdown(r: {
  command: string;
  startedAt: string;
  code: { commit: string };
  machine: { nproc: number; loadBefore: number; loadAfter: number };
  clients: number;
  seconds: number;
  model: string;
  sdk: Omit<LoadResult, 'samples'>;
  gateway: Omit<LoadResult, 'samples'>;
  openai: Omit<LoadResult, 'samples'>;
  gatewayCores: number;
  cpuMs: { gatewayPerRequest: number; workerPerEntry: number; workerPerEntrySdk: number };
  gatewayPeakRssMb: number | null;
  open: SameLoad[];
  ratios: { throughput: number; p50: number; p99: number };
}): string {
  const row = (label: string, x: Omit<LoadResult, 'samples'>) =>
    `| ${label} | ${x.perSecond.toFixed(0)} | ${x.latency?.p50Ms.toFixed(1)} | ${x.latency?.p99Ms.toFixed(1)} | ${x.errors} |`;
  return [
    `### Gateway${r.model.startsWith('noop') ? '' : `, ${r.model}`}${r.command.includes('--quick') ? ' (quick)' : ''}, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Command: \`${r.command}\` at ${r.code.commit}; ${r.machine.nproc} cores shared by Redis, one worker (\`${r.model}\`), the gateway and the load generator (1-min load average ${r.machine.loadBefore} before, ${r.machine.loadAfter} after: other work on the machine). ${r.clients} clients, one input per request, ${r.seconds} s per path in alternating slices of ${SLICE_S} s.`,
    '',
    '| path | requests/s | p50 ms | p99 ms | errors |',
    '| --- | --- | --- | --- | --- |',
    row('SDK `embed` (no HTTP)', r.sdk),
    row('gateway (keep-alive HTTP client, base64)', r.gateway),
    row('gateway (official `openai` client, base64)', r.openai),
    '',
    `Gateway / SDK in this run: throughput ${r.ratios.throughput}x, p50 ${r.ratios.p50}x, p99 ${r.ratios.p99}x. Gateway process: ${r.gatewayCores} cores, peak RSS ${r.gatewayPeakRssMb ?? '?'} MiB.`,
    '',
    ...(r.open.length > 0
      ? [
          'At the same offered load (open loop, requests sent at a fixed rate, latency from when each was due; the two paths in turn):',
          '',
          '| requests/s | SDK p50 / p99 ms | gateway p50 / p99 ms | gateway p50 over SDK, ms | CPU ms: gateway per request / worker per entry (SDK path) / bare Node HTTP per request | gateway / worker CPU | errors |',
          '| --- | --- | --- | --- | --- | --- | --- |',
          ...r.open.map(
            (o) =>
              `| ${o.perSecond} | ${o.sdk.latency?.p50Ms.toFixed(1)} / ${o.sdk.latency?.p99Ms.toFixed(1)} | ${o.gateway.latency?.p50Ms.toFixed(1)} / ${o.gateway.latency?.p99Ms.toFixed(1)} | ${o.p50OverMs.toFixed(1)} | ${o.cpuMs.gateway} / ${o.cpuMs.worker} (${o.cpuMs.workerSdk}) / ${o.cpuMs.floor} | ${round(o.cpuMs.gateway / o.cpuMs.worker, 2)} | ${o.sdk.errors + o.gateway.errors + o.floor.errors} |`,
          ),
          '',
          'Bare Node HTTP is bench/http-floor.ts: a `node:http` server that reads and parses the body and answers a canned response of the same size, the least any Node front door pays per request at that rate.',
          '',
        ]
      : []),
    `CPU in the same slices: the gateway ${r.cpuMs.gatewayPerRequest} ms per request, the worker ${r.cpuMs.workerPerEntry} ms per entry (${r.cpuMs.workerPerEntrySdk} on the SDK path): gateway / worker ${round(r.cpuMs.gatewayPerRequest / r.cpuMs.workerPerEntry, 2)}. Below 1, a fleet scaled on CPU needs fewer gateway cores than worker cores for this model.`,
  ].join('\n');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
