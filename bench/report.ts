/**
 * Turns the run's raw records into the summary: throughput per case and
 * corpus (best round), the compute limit (best layout and packing),
 * the ratios the issue asks for, peak RSS, and how loaded the machine was.
 * Prints it, writes bench/results/<name>.json and the generated section of
 * BENCHMARKS.md for this mode (the hand-written parts are kept).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { RunRecord } from './cases/types.js';
import type { CorpusStats } from './corpus.js';
import type { MachineFacts } from './machine.js';
import type { BenchOptions, CorpusName } from './options.js';
import { type Latency, mean, round } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CaseSummary {
  /** Best round (the least disturbed by the rest of a shared machine); every round is in `rounds`. */
  perSecond: number;
  /** Per round, in run order. */
  rounds: number[];
  latency?: Latency;
  /** CPU cores the case's own processes used on average while measured (not Redis, not the producer). */
  cores?: number;
  /** CPU time of the case's own processes per text, ms: less sensitive to a shared machine than wall time. */
  cpuMsPerText?: number;
  detail?: Record<string, unknown>;
}

export interface Ratio {
  value: number;
  target?: string;
  met?: boolean;
}

export interface BenchReport {
  command: string;
  mode: 'quick' | 'full';
  startedAt: string;
  seconds: number;
  machine: MachineFacts;
  code: { commit: string; dirty: string[] };
  model: { dir: string; dtype: string; file: string };
  options: Pick<BenchOptions, 'seed' | 'rounds' | 'scale' | 'bullmq' | 'cases' | 'corpora'>;
  corpora: Array<{ name: CorpusName } & CorpusStats>;
  cases: Array<{ id: string; label: string; peakRssMb?: number }>;
  results: Partial<Record<CorpusName, Record<string, CaseSummary>>>;
  limit: Partial<Record<CorpusName, { perSecond: number; layout: string; packing?: unknown }>>;
  ratios: Partial<Record<CorpusName, Record<string, Ratio>>>;
  load: { meanOtherCores?: number; maxOtherCores?: number; note?: string };
  records: RunRecord[];
}

interface SummariseInput {
  options: BenchOptions;
  command: string;
  machine: MachineFacts;
  code: BenchReport['code'];
  model: BenchReport['model'];
  corpora: BenchReport['corpora'];
  drivers: Array<{ id: string; label: string }>;
  records: RunRecord[];
  peakRss: Record<string, number | undefined>;
  startedAt: string;
  seconds: number;
  nproc: number;
}

export function summarise(input: SummariseInput): BenchReport {
  const { options, records } = input;
  const results: BenchReport['results'] = {};
  const limit: BenchReport['limit'] = {};
  const ratios: BenchReport['ratios'] = {};
  for (const corpus of options.corpora) {
    const byCase: Record<string, CaseSummary> = {};
    for (const d of input.drivers) {
      const runs = records.filter((r) => r.corpus === corpus && r.caseId === d.id);
      if (runs.length === 0) continue;
      const ms = runs.map((r) => r.measurement);
      // Everything reported comes from the best round; the others are listed.
      const best = ms.reduce((x, y) => (y.perSecond > x.perSecond ? y : x));
      byCase[d.id] = {
        perSecond: round(best.perSecond, 1),
        rounds: ms.map((m) => round(m.perSecond, 1)),
        ...(best.latency && { latency: best.latency }),
        ...(best.cpuSeconds !== undefined && {
          cores: round(best.cpuSeconds / best.seconds, 2),
          cpuMsPerText: round((best.cpuSeconds * 1000) / best.texts, 3),
        }),
        ...(best.detail && { detail: best.detail }),
      };
    }
    results[corpus] = byCase;
    const layouts = Object.entries(byCase).filter(([id]) => id.startsWith('a:'));
    if (layouts.length > 0) {
      const [layout, best] = layouts.reduce((x, y) => (y[1].perSecond > x[1].perSecond ? y : x));
      limit[corpus] = {
        perSecond: best.perSecond,
        layout,
        ...(best.detail?.packing !== undefined && { packing: best.detail.packing }),
      };
    }
    const r: Record<string, Ratio> = {};
    const d = byCase.d?.perSecond;
    const a = limit[corpus]?.perSecond;
    if (d !== undefined && a) r['d/a'] = ratio(d / a, '>= 0.90', d / a >= 0.9);
    if (d !== undefined && byCase.b)
      r['d/b'] = ratio(d / byCase.b.perSecond, '> 1', d > byCase.b.perSecond);
    if (d !== undefined && byCase.c)
      r['d/c'] = ratio(d / byCase.c.perSecond, '> 1', d > byCase.c.perSecond);
    const es = byCase['e:streambed']?.perSecond;
    const eb = byCase['e:bullmq']?.perSecond;
    if (es !== undefined && eb) r['e streambed/BullMQ'] = ratio(es / eb, '>= 3', es / eb >= 3);
    const f = byCase.f?.perSecond;
    if (es !== undefined && f) r['e streambed/f'] = ratio(es / f, '>= 0.5', es / f >= 0.5);
    // CPU time per text: how much work each side spends, whatever else ran on the machine.
    const cpuOf = (id: string | undefined) => (id ? byCase[id]?.cpuMsPerText : undefined);
    const aCpu = cpuOf(limit[corpus]?.layout);
    const dCpu = cpuOf('d');
    if (aCpu && dCpu) r['a/d CPU ms per text'] = { value: round(aCpu / dCpu, 2) };
    // The same, split: how much of the gap is in the compute threads, how much around them.
    const split = byCase.d?.detail?.cpuSplit as
      { main: number; compute: number; other: number } | undefined;
    const texts = records.find((x) => x.corpus === corpus && x.caseId === 'd')?.measurement.texts;
    if (aCpu && split && texts) {
      const perText = (s: number) => (s * 1000) / texts;
      if (split.compute > 0)
        r['a/d CPU, d compute threads only'] = { value: round(aCpu / perText(split.compute), 2) };
      r['d CPU ms per text: main thread'] = { value: round(perText(split.main), 3) };
      r['d CPU ms per text: other threads'] = { value: round(perText(split.other), 3) };
    }
    const esCpu = cpuOf('e:streambed');
    const ebCpu = cpuOf('e:bullmq');
    if (esCpu && ebCpu)
      r['e BullMQ/streambed CPU ms per entry'] = { value: round(ebCpu / esCpu, 2) };
    const fCpu = cpuOf('f');
    if (esCpu && fCpu) r['f/e streambed CPU ms per entry'] = { value: round(fCpu / esCpu, 2) };
    ratios[corpus] = r;
  }
  const other = records.flatMap((r) => (r.otherCores !== undefined ? [r.otherCores] : []));
  const maxOther = other.length ? Math.max(...other) : undefined;
  const meanOther = other.length ? round(mean(other), 2) : undefined;
  const busy = maxOther !== undefined && maxOther > 0.25;
  return {
    command: input.command,
    mode: options.quick ? 'quick' : 'full',
    startedAt: input.startedAt,
    seconds: input.seconds,
    machine: input.machine,
    code: input.code,
    model: input.model,
    options: {
      seed: options.seed,
      rounds: options.rounds,
      scale: options.scale,
      bullmq: options.bullmq,
      cases: options.cases,
      corpora: options.corpora,
    },
    corpora: input.corpora,
    cases: input.drivers.map((d) => ({
      ...d,
      ...(input.peakRss[d.id] !== undefined && { peakRssMb: input.peakRss[d.id] }),
    })),
    results,
    limit,
    ratios,
    load: {
      ...(meanOther !== undefined && { meanOtherCores: meanOther }),
      ...(maxOther !== undefined && { maxOtherCores: maxOther }),
      ...(busy && {
        note: `the machine was shared: other processes used up to ${maxOther} of ${input.nproc} cores (mean ${meanOther}) during measured runs, so absolute numbers are low and noisy; ratios come from back-to-back runs`,
      }),
    },
    records,
  };
}

function ratio(value: number, target: string, met: boolean): Ratio {
  return { value: round(value, 2), target, met };
}

function fmt(x: number | undefined, digits = 1): string {
  return x === undefined ? '-' : x.toFixed(digits);
}

/** Rows of the results tables: one per case, one column per corpus. */
function tables(report: BenchReport): {
  throughput: string[][];
  latency: string[][];
  ratios: string[][];
} {
  const corpora = report.options.corpora;
  const throughput: string[][] = [
    ['case', ...corpora.map((c) => `${c} texts/s`), 'cores used', 'CPU ms/text', 'peak RSS MiB'],
  ];
  const latency: string[][] = [['case', ...corpora.map((c) => `${c} p50 / p99 ms`)]];
  for (const c of report.cases) {
    const cores = corpora.map((k) => report.results[k]?.[c.id]?.cores);
    const cpu = corpora.map((k) => report.results[k]?.[c.id]?.cpuMsPerText);
    throughput.push([
      c.label,
      ...corpora.map((k) => fmt(report.results[k]?.[c.id]?.perSecond)),
      cores.every((x) => x === undefined) ? '-' : cores.map((x) => fmt(x, 2)).join(' / '),
      cpu.every((x) => x === undefined) ? '-' : cpu.map((x) => fmt(x, 2)).join(' / '),
      c.peakRssMb === undefined ? '-' : String(c.peakRssMb),
    ]);
    if (corpora.some((k) => report.results[k]?.[c.id]?.latency))
      latency.push([
        c.label,
        ...corpora.map((k) => {
          const l = report.results[k]?.[c.id]?.latency;
          return l ? `${l.p50Ms} / ${l.p99Ms}` : '-';
        }),
      ]);
  }
  throughput.push([
    '**compute limit** (best of a)',
    ...corpora.map((k) => {
      const l = report.limit[k];
      return l ? `**${fmt(l.perSecond)}** (${l.layout.slice(2)}, ${String(l.packing ?? '')})` : '-';
    }),
    '',
    '',
    '',
  ]);
  const names = [...new Set(corpora.flatMap((k) => Object.keys(report.ratios[k] ?? {})))];
  const ratios: string[][] = [['ratio', ...corpora, 'target']];
  for (const n of names) {
    const target = corpora.map((k) => report.ratios[k]?.[n]?.target).find(Boolean) ?? '';
    ratios.push([
      n,
      ...corpora.map((k) => {
        const r = report.ratios[k]?.[n];
        return r ? `${r.value.toFixed(2)}${r.met === false ? ' (missed)' : ''}` : '-';
      }),
      target,
    ]);
  }
  return { throughput, latency, ratios };
}

function markdownTable(rows: string[][]): string {
  const [head, ...body] = rows;
  if (!head) return '';
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

function textTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

export function printReport(report: BenchReport): void {
  const t = tables(report);
  const strip = (rows: string[][]) => rows.map((r) => r.map((c) => c.replaceAll('**', '')));
  console.log(
    `\nthroughput (best of ${report.options.rounds} round(s)), dtype ${report.model.dtype}`,
  );
  console.log(textTable(strip(t.throughput)));
  console.log('\nlatency, entry/job created -> result written (burst of the whole corpus)');
  console.log(textTable(t.latency));
  console.log('\nratios');
  console.log(textTable(t.ratios));
  if (report.load.note) console.log(`\nNOTE: ${report.load.note}`);
  console.log(`\n${report.mode} run took ${report.seconds} s`);
}

export async function writeJson(report: object, name: string): Promise<string> {
  const dir = path.join(ROOT, 'bench', 'results');
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  await fs.writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return path.relative(ROOT, file);
}

/** Replace this mode's generated section of BENCHMARKS.md (between its markers), keeping the rest. */
export async function writeMarkdown(report: BenchReport): Promise<string> {
  return writeBenchSection(report.mode, markdownSection(report));
}

/** Replace (or append) the section between `<!-- bench:{name}:begin/end -->` in BENCHMARKS.md. */
export async function writeBenchSection(name: string, markdown: string): Promise<string> {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = `${begin}\n\n${markdown}\n\n${end}`;
  let text = await fs.readFile(file, 'utf8').catch(() => '# Benchmarks\n');
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + section + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  await fs.writeFile(file, text);
  return path.relative(ROOT, file);
}

function markdownSection(report: BenchReport): string {
  const m = report.machine;
  const t = tables(report);
  const corpora = report.corpora
    .map(
      (c) =>
        `${c.name} ${c.texts} texts (tokens mean ${c.tokens.mean}, p50 ${c.tokens.p50}, p99 ${c.tokens.p99}, max ${c.tokens.max})`,
    )
    .join('; ');
  return [
    `### ${report.mode === 'quick' ? 'Quick' : 'Full'} run, ${report.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Command: \`${report.command}\` (${report.seconds} s, ${report.options.rounds} round(s), corpus seed ${report.options.seed}).`,
    `Machine: nproc ${m.nproc} (${m.cpu}), ${m.memGb} GiB, node ${m.node}, redis ${m.redis}, ${m.platform}.`,
    `Code: commit ${report.code.commit}${report.code.dirty.length ? ` plus uncommitted changes to ${report.code.dirty.join(', ')}` : ''}.`,
    `Model: generated \`minilm\` preset, ${report.model.dtype} (\`${report.model.file}\`). Corpora: ${corpora}.`,
    ...(report.load.note ? ['', `**Load:** ${report.load.note}.`] : []),
    '',
    `Throughput is each case's best of ${report.options.rounds} round(s). \`cores used\` and \`CPU ms/text\` count the case's own processes (not Redis, not the producer), per corpus.`,
    '',
    markdownTable(t.throughput),
    '',
    'Latency, entry/job creation to result written, for a burst of the whole corpus (so it is mostly queueing):',
    '',
    markdownTable(t.latency),
    '',
    markdownTable(t.ratios),
  ].join('\n');
}
