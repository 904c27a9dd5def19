/**
 * The main path's state machines with in-memory fakes of their interfaces
 * (a backend whose runs the test finishes by hand, a writer that records):
 * the held ledger's bound, the failure decision, overdue batches, poison
 * strikes and transient retries. Fast and exact; the end-to-end tests with
 * real threads and Redis are leases, ort-timeout, poison and chaos.
 */
import { describe, expect, it } from 'vitest';

import { StreambedError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import type { Answer, Delivery } from '../src/worker/answer.js';
import type { BatchRun, EmbedBackend } from '../src/worker/backend.js';
import { classify, decide, POISON_STRIKES } from '../src/worker/batch-failures.js';
import { WorkerEvents } from '../src/worker/events.js';
import { HeldLedger } from '../src/worker/held-ledger.js';
import { InFlight } from '../src/worker/in-flight.js';
import type { LoadedModel } from '../src/worker/pool.js';
import type { AnswerWriter, WriteReport } from '../src/worker/result-writer.js';
import type { EmbedTaskResult } from '../workers/embed-worker.js';

const DIM = 2;

interface FakeRun {
  texts: string[];
  native: boolean;
  finish(): void;
  fail(err: StreambedError): void;
}

/** A backend whose runs start at once and end when the test (or `auto`) says so. */
class FakeBackend implements EmbedBackend {
  readonly runs: FakeRun[] = [];
  /** Called on each new run: finish or fail it at once, or leave it to the test. */
  auto: (run: FakeRun) => void = () => undefined;
  constructor(readonly threads = 2) {}
  load(): Promise<LoadedModel> {
    throw new Error('not used');
  }
  embed(_model: string, input: unknown): BatchRun {
    const texts = input as string[];
    const started = Date.now();
    let run!: FakeRun;
    const result = new Promise<EmbedTaskResult>((resolve, reject) => {
      run = {
        texts,
        native: false,
        finish: () =>
          resolve({
            data: new Float32Array(texts.length * DIM).fill(1),
            dim: DIM,
            truncated: new Uint8Array(texts.length),
            tokens: new Uint32Array(texts.length).fill(1),
            paddedTokens: texts.length,
            ms: 1,
          }),
        fail: reject,
      };
    });
    this.runs.push(run);
    this.auto(run);
    return { result, startedAt: () => started, uninterruptible: () => run.native };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

class FakeWriter implements AnswerWriter {
  readonly written: Answer[] = [];
  write(answers: Answer[]): Promise<WriteReport> {
    this.written.push(...answers);
    return Promise.resolve({ written: answers, fenced: [], unwritable: [] });
  }
}

function harness(opts: { batchTimeoutMs?: number; maxHeld?: number; batchSize?: number } = {}) {
  const backend = new FakeBackend();
  const writer = new FakeWriter();
  const model: LoadedModel = {
    spec: { name: 'm', ref: 'fake', local: true, dtype: 'fp32' } as LoadedModel['spec'],
    dim: DIM,
    maxTokens: 512,
    loadMs: 0,
  };
  const inFlight = new InFlight({
    pool: backend,
    models: new Map([['m', model]]),
    writer,
    decode: (fields) => ({
      ok: true,
      envelope: {
        id: fields[1]?.toString() ?? '',
        source: 's',
        texts: [fields[3]?.toString() ?? ''],
        single: true,
      },
    }),
    events: new WorkerEvents(),
    log: createLogger('silent'),
    consumer: 'c',
    limits: { batchSize: opts.batchSize ?? 8, maxBatchTokens: 10_000 },
    maxBatches: 4,
    lookahead: 8,
    laneOf: () => 'interactive',
    maxHeld: opts.maxHeld ?? 64,
    batchTimeoutMs: opts.batchTimeoutMs ?? 60_000,
    maxChunks: 256,
  });
  let seq = 0;
  const deliver = (texts: string[]): Delivery[] =>
    texts.map((text) => {
      const id = `1-${seq++}`;
      return {
        stream: 'req:m',
        model: 'm',
        id,
        fields: [Buffer.from('id'), Buffer.from(id), Buffer.from('text'), Buffer.from(text)],
        deliveries: 1,
        receivedAt: Date.now(),
      };
    });
  const answersFor = (n: number) =>
    waitFor(() => (writer.written.length >= n ? writer.written : undefined));
  return { backend, writer, inFlight, deliver, answersFor };
}

async function waitFor<T>(check: () => T | undefined, ms = 5_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HeldLedger', () => {
  it('never grants room past maxHeld, counting held and reserved', () => {
    const ledger = new HeldLedger(10);
    expect(ledger.reserve(6)).toBe(6);
    expect(ledger.reserve(6)).toBe(4);
    expect(ledger.reserve(1)).toBe(0);
    ledger.unreserve(10);
    const d = (id: string): Delivery => ({
      stream: 's',
      model: 'm',
      id,
      fields: [],
      deliveries: 1,
      receivedAt: 0,
    });
    for (let i = 0; i < 7; i++) expect(ledger.add(d(`1-${i}`))).toBe(true);
    expect(ledger.add(d('1-0'))).toBe(false);
    expect(ledger.reserve(5)).toBe(3);
    expect(ledger.size + ledger.reserved).toBe(10);
  });

  it('lists for renewal only entries not renewed since the cutoff, by stream', () => {
    const ledger = new HeldLedger(10);
    ledger.add(
      { stream: 'a', model: 'm', id: '1-1', fields: [], deliveries: 1, receivedAt: 0 },
      100,
    );
    ledger.add(
      { stream: 'b', model: 'm', id: '1-2', fields: [], deliveries: 2, receivedAt: 0 },
      200,
    );
    expect([...ledger.due(150).keys()]).toEqual(['a']);
    ledger.renewed(ledger.due(150).get('a') ?? [], 300);
    expect(ledger.due(250).size).toBe(1);
    expect(ledger.due(250).get('b')?.[0]?.deliveries).toBe(2);
  });
});

describe('batch failure decisions', () => {
  const err = (code: 'model_error' | 'timeout' | 'worker_crashed' | 'model_load_failed') =>
    new StreambedError(code, code);

  it('classes failures by their code', () => {
    expect(classify(err('model_error'))).toBe('input');
    expect(classify(err('timeout'))).toBe('thread');
    expect(classify(err('worker_crashed'))).toBe('thread');
    expect(classify(err('model_load_failed'))).toBe('transient');
  });

  it('splits batches; fails a lone input failure at once and a lone thread failure at the strike bound', () => {
    expect(decide('input', 4, 0, 0).action).toBe('split');
    expect(decide('thread', 4, 0, 0).action).toBe('split');
    expect(decide('input', 1, 0, 0).action).toBe('fail');
    for (let s = 0; s < POISON_STRIKES - 1; s++)
      expect(decide('thread', 1, s, 0).action).toBe('retry');
    expect(decide('thread', 1, POISON_STRIKES - 1, 0).action).toBe('fail');
  });

  it('retries transient failures whole, with a bounded backoff, however many texts', () => {
    for (const attempt of [0, 5, 50]) {
      const d = decide('transient', 16, 0, attempt);
      expect(d.action).toBe('retry');
      expect(d.action === 'retry' && d.afterMs).toBeLessThanOrEqual(30_000);
    }
  });
});

describe('InFlight with a fake backend', () => {
  it('an overdue batch outside native code is split and sent again; the first run to finish answers each text once', async () => {
    const h = harness({ batchTimeoutMs: 40 });
    h.inFlight.accept(h.deliver(['a', 'b', 'c', 'd']));
    await waitFor(() => h.backend.runs[0]);
    // Past the timeout the halves go out; the original is still running.
    await waitFor(() => (h.backend.runs.length >= 3 ? true : undefined));
    const [original, first] = h.backend.runs as [FakeRun, FakeRun, FakeRun];
    expect(h.backend.runs.slice(1).map((r) => r.texts)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    first.finish();
    original.finish();
    const answers = await h.answersFor(4);
    await sleep(100);
    for (const run of h.backend.runs) run.finish();
    await sleep(20);
    expect(h.writer.written).toHaveLength(4);
    expect(answers.every((a) => a.outcome === 'ok')).toBe(true);
    expect(h.inFlight.size).toBe(0);
  });

  it('an overdue batch inside ONNX Runtime is waited for and never sent again', async () => {
    const h = harness({ batchTimeoutMs: 20 });
    h.backend.auto = (run) => (run.native = true);
    h.inFlight.accept(h.deliver(['a', 'b', 'c']));
    await sleep(200);
    expect(h.backend.runs).toHaveLength(1);
    h.backend.runs[0]?.finish();
    const answers = await h.answersFor(3);
    expect(answers.every((a) => a.outcome === 'ok')).toBe(true);
  });

  it(`a text that takes its thread down alone ${POISON_STRIKES} times fails model_error; its neighbours are answered`, async () => {
    const h = harness();
    h.backend.auto = (run) => {
      if (run.texts.includes('bad')) run.fail(new StreambedError('worker_crashed', 'thread died'));
      else run.finish();
    };
    h.inFlight.accept(h.deliver(['a', 'b', 'bad', 'c']));
    const answers = await h.answersFor(4);
    const bad = answers.find((a) => a.id === '1-2');
    expect(bad?.outcome).toBe('error');
    expect(bad?.error?.code).toBe('model_error');
    expect(answers.filter((a) => a.outcome === 'ok')).toHaveLength(3);
    const alone = h.backend.runs.filter((r) => r.texts.length === 1 && r.texts[0] === 'bad');
    expect(alone).toHaveLength(POISON_STRIKES);
  });

  it('a transient failure (model not loaded on a fresh thread) retries the batch whole; nothing fails', async () => {
    const h = harness();
    let failures = 2;
    h.backend.auto = (run) => {
      if (failures-- > 0) run.fail(new StreambedError('model_load_failed', 'loading'));
      else run.finish();
    };
    h.inFlight.accept(h.deliver(['a', 'b', 'c']));
    const answers = await h.answersFor(3);
    expect(answers.every((a) => a.outcome === 'ok')).toBe(true);
    expect(h.backend.runs.map((r) => r.texts.length)).toEqual([3, 3, 3]);
  });

  it('room() never lets reads pass the hold bound, with reads in flight', () => {
    const h = harness({ maxHeld: 20, batchSize: 8 });
    const reserved = h.inFlight.reserve(h.inFlight.room());
    expect(reserved).toBeLessThanOrEqual(20);
    h.inFlight.accept(h.deliver(Array.from({ length: reserved }, (_, i) => `t${i}`)));
    h.inFlight.unreserve(reserved);
    expect(h.inFlight.size + h.inFlight.reserve(1_000)).toBeLessThanOrEqual(20);
  });
});
