/**
 * Cases whose consumer is a hand-written role process reading plain
 * `id`/`text` entries (b, f): the runner XADDs the texts and reads the
 * role's result stream back until every entry has its result.
 */
import type { Redis } from 'ioredis';

import { RoleChild } from '../child.js';
import type { Corpus } from '../corpus.js';
import { latencyOf, round } from '../stats.js';
import { collectResults, deletePrefix, xaddTexts } from './redis-util.js';
import type { CaseDriver, Measurement } from './types.js';

export interface PlainStreamRole {
  id: string;
  label: string;
  /** The file under bench/roles/. */
  role: string;
  /** The role's init, given the request stream, its group and the result stream. */
  init: (names: { stream: string; group: string; results: string }) => object;
}

export class PlainStreamCase implements CaseDriver {
  readonly id: string;
  readonly label: string;
  private child: RoleChild | undefined;
  private readonly stream: string;
  private readonly results: string;
  private runs = 0;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly role: PlainStreamRole,
  ) {
    this.id = role.id;
    this.label = role.label;
    this.stream = `${prefix}:requests`;
    this.results = `${prefix}:results`;
  }

  async start(warmup: readonly string[]): Promise<void> {
    const init = this.role.init({ stream: this.stream, group: this.id, results: this.results });
    this.child = await RoleChild.start(this.id, this.role.role, init);
    await this.pass(warmup, 'warm');
  }

  async run(corpus: Corpus): Promise<Measurement> {
    const child = this.child as RoleChild;
    const cpu0 = child.cpuSeconds();
    const m = await this.pass(corpus.texts, `${corpus.name}-${++this.runs}`);
    const cpu1 = child.cpuSeconds();
    return {
      ...m,
      ...(cpu0 !== undefined && cpu1 !== undefined && { cpuSeconds: round(cpu1 - cpu0, 2) }),
    };
  }

  private async pass(texts: readonly string[], tag: string): Promise<Measurement> {
    const reader = this.redis.duplicate();
    try {
      const started = performance.now();
      const rids = await xaddTexts(this.redis, this.stream, texts, tag);
      const got = await collectResults(reader, this.results, new Set(rids), {
        stallMs: 60_000,
        dead: () => this.child?.dead(),
      });
      const seconds = (got.doneAt - started) / 1000;
      const latency = latencyOf(got.latenciesMs);
      return {
        texts: texts.length,
        seconds,
        perSecond: texts.length / seconds,
        ...(latency && { latency }),
      };
    } finally {
      reader.disconnect();
      // Acked history and results are done with: keep the group, drop the entries.
      await this.redis.xtrim(this.stream, 'MAXLEN', 0);
      await this.redis.del(this.results);
    }
  }

  pids(): number[] {
    return this.child ? [this.child.pid] : [];
  }

  async stop(): Promise<{ peakRssMb?: number }> {
    const peakRssMb = this.child?.peakRssMb();
    await this.child?.stop();
    await deletePrefix(this.redis, this.prefix);
    return { ...(peakRssMb !== undefined && { peakRssMb }) };
  }
}
