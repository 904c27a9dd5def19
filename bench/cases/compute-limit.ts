/**
 * Case a driver: the compute limit in one layout (threads x intra-op
 * threads), measured at each packing; the runner keeps the best as the limit.
 */
import { RoleChild } from '../child.js';
import type { Corpus } from '../corpus.js';
import type { LimitResult, Packing } from '../roles/ort-limit.js';
import { round } from '../stats.js';
import type { CaseDriver, Measurement } from './types.js';

/**
 * Batch 1, and token-aware packs under two token budgets (the issue: batching
 * ~16-token texts helps ~1.4x on CPU, batching long texts does not).
 */
export const PACKINGS: Packing[] = [
  { batchSize: 1, maxBatchTokens: 1 << 20 },
  { batchSize: 32, maxBatchTokens: 512 },
  { batchSize: 32, maxBatchTokens: 2048 },
];

export function packingName(p: Packing): string {
  return p.batchSize === 1 ? 'batch 1' : `<=${p.batchSize} texts, <=${p.maxBatchTokens} tokens`;
}

export class ComputeLimitCase implements CaseDriver {
  readonly id: string;
  readonly label: string;
  private child: RoleChild | undefined;

  constructor(
    private readonly onnxFile: string,
    private readonly threads: number,
    private readonly intraOp: number,
    private readonly warmIds: number[][],
    private readonly packings: Packing[] = PACKINGS,
    /** Pick the packing on every `pilotStride`-th text, then measure only the winner (quick mode). */
    private readonly pilotStride = 0,
  ) {
    this.id = `a:${threads}x${intraOp}`;
    this.label = `a. compute limit, raw ORT ${threads} session(s) x ${intraOp} thread(s)`;
  }

  async start(): Promise<void> {
    this.child = await RoleChild.start(this.id, 'ort-limit', {
      onnxFile: this.onnxFile,
      threads: this.threads,
      intraOp: this.intraOp,
      warmup: this.warmIds,
    });
  }

  /**
   * Every packing on the corpus; the measurement is the best, the others go
   * in detail. With a pilot stride, packings are compared on a sample first
   * and only the winner runs on the whole corpus.
   */
  async run(corpus: Corpus): Promise<Measurement> {
    const pilot =
      this.pilotStride > 1 && this.packings.length > 1
        ? corpus.ids.filter((_, i) => i % this.pilotStride === 0)
        : undefined;
    const tried: Array<Measurement & { packing: Packing }> = [];
    for (const packing of this.packings)
      tried.push(await this.measure(pilot ?? corpus.ids, packing));
    const winner = tried.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
    const best = pilot ? await this.measure(corpus.ids, winner.packing) : winner;
    return {
      ...best,
      detail: {
        ...best.detail,
        packing: packingName(best.packing),
        [pilot ? 'pilot' : 'packings']: tried.map((t) => ({
          packing: packingName(t.packing),
          texts: t.texts,
          perSecond: round(t.perSecond, 1),
        })),
      },
    };
  }

  /** Raw ORT on exactly these batch shapes ([texts, padded length]), e.g. the ones streambed formed. */
  async runShapes(shapes: Array<[number, number]>): Promise<LimitResult> {
    return (this.child as RoleChild).call<LimitResult>('run', {
      ids: [],
      packing: PACKINGS[0],
      shapes,
    });
  }

  private async measure(
    ids: number[][],
    packing: Packing,
  ): Promise<Measurement & { packing: Packing }> {
    const child = this.child as RoleChild;
    const cpu0 = child.cpuSeconds();
    const r = await child.call<LimitResult>('run', { ids, packing });
    const cpu1 = child.cpuSeconds();
    return {
      packing,
      texts: r.texts,
      seconds: r.seconds,
      perSecond: r.texts / r.seconds,
      ...(cpu0 !== undefined && cpu1 !== undefined && { cpuSeconds: round(cpu1 - cpu0, 2) }),
      detail: {
        batches: r.batches,
        paddingWaste: round(1 - r.tokens / r.paddedTokens, 3),
        threadBusy: r.threadBusy,
      },
    };
  }

  pids(): number[] {
    return this.child ? [this.child.pid] : [];
  }

  async stop(): Promise<{ peakRssMb?: number }> {
    const peakRssMb = this.child?.peakRssMb();
    await this.child?.stop();
    return { ...(peakRssMb !== undefined && { peakRssMb }) };
  }
}
