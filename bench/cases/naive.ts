/**
 * Case b driver: the hand-written ioredis + Transformers.js consumer in its
 * own process; the runner XADDs plain entries and reads its result stream.
 */
import type { Redis } from 'ioredis';

import { RoleChild } from '../child.js';
import type { Corpus } from '../corpus.js';
import type { EmbedConfig } from '../roles/transformers-embed.js';
import { latencyOf, round } from '../stats.js';
import { collectResults, deletePrefix, xaddTexts } from './redis-util.js';
import type { CaseDriver, Measurement } from './types.js';

export class NaiveCase implements CaseDriver {
  readonly id = 'b';
  readonly label = 'b. naive consumer (ioredis + Transformers.js, COUNT 1, 1 process)';
  private child: RoleChild | undefined;
  private readonly stream: string;
  private readonly results: string;
  private runs = 0;

  constructor(
    private readonly redis: Redis,
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly embed: EmbedConfig,
  ) {
    this.stream = `${prefix}:requests`;
    this.results = `${prefix}:results`;
  }

  async start(warmup: readonly string[]): Promise<void> {
    this.child = await RoleChild.start(this.id, 'naive-consumer', {
      ...this.embed,
      redisUrl: this.redisUrl,
      stream: this.stream,
      group: 'naive',
      results: this.results,
    });
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
