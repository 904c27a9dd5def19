/**
 * Case a, inside one worker thread: one raw onnxruntime-node session.
 * Tensors for every batch are built before the clock starts (pre-tokenised
 * input); batches are taken from a shared counter, so threads never wait on
 * each other or on messages while measured.
 */
import { parentPort, workerData } from 'node:worker_threads';

import ort from 'onnxruntime-node';

interface Init {
  onnxFile: string;
  intraOp: number;
}

type Feeds = Record<string, ort.Tensor>;

const { onnxFile, intraOp } = workerData as Init;
const port = parentPort;
if (!port) throw new Error('ort-thread must run as a worker thread');

const session = await ort.InferenceSession.create(onnxFile, {
  intraOpNumThreads: intraOp,
  interOpNumThreads: 1,
});
let feeds: Feeds[] = [];

function toFeeds(batch: number[][]): Feeds {
  const n = batch.length;
  const len = Math.max(...batch.map((t) => t.length));
  const ids = new BigInt64Array(n * len);
  const mask = new BigInt64Array(n * len);
  batch.forEach((row, i) => {
    row.forEach((id, j) => {
      ids[i * len + j] = BigInt(id);
      mask[i * len + j] = 1n;
    });
  });
  const dims = [n, len];
  return {
    input_ids: new ort.Tensor('int64', ids, dims),
    attention_mask: new ort.Tensor('int64', mask, dims),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(n * len), dims),
  };
}

port.on(
  'message',
  (
    m:
      | { op: 'prepare'; batches: number[][][] }
      | { op: 'go'; counter: SharedArrayBuffer }
      | { op: 'warm'; batches: number[][][] },
  ) => {
    void (async () => {
      if (m.op === 'prepare') {
        feeds = m.batches.map(toFeeds);
        port.postMessage({ op: 'prepared' });
      } else if (m.op === 'warm') {
        for (const b of m.batches) await session.run(toFeeds(b));
        port.postMessage({ op: 'warmed' });
      } else {
        const counter = new Int32Array(m.counter);
        let busyMs = 0;
        let runs = 0;
        for (let i = Atomics.add(counter, 0, 1); i < feeds.length; i = Atomics.add(counter, 0, 1)) {
          const t = performance.now();
          await session.run(feeds[i] as Feeds);
          busyMs += performance.now() - t;
          runs++;
        }
        feeds = [];
        port.postMessage({ op: 'done', busyMs, runs });
      }
    })();
  },
);
port.postMessage({ op: 'ready' });
