import { describe, expect, it } from 'vitest';

import { loadConfig, loadSettings, redactUrl, resolveThreads } from '../src/config/load.js';
import { flagName, SETTINGS } from '../src/config/settings.js';
import {
  formatModelTable,
  modelRef,
  type ModelSpec,
  parseModelTable,
} from '../src/models/table.js';

describe('configuration', () => {
  it('layers defaults < env < flags', () => {
    expect(loadConfig({}).batchSize).toBe(32);
    expect(loadConfig({ BATCH_SIZE: '8' }).batchSize).toBe(8);
    expect(loadConfig({ BATCH_SIZE: '8' }, { batchSize: '4' }).batchSize).toBe(4);
  });

  it('rejects a malformed value and names the setting', () => {
    expect(() => loadConfig({ THREADS: 'zero' })).toThrow(/THREADS/);
    expect(() => loadConfig({ BATCH_SIZE: '0' })).toThrow(/BATCH_SIZE/);
    expect(() => loadConfig({ REDIS_URL: 'http://x' })).toThrow(/REDIS_URL/);
  });

  it('loads only the settings a command uses', () => {
    const env = { THREADS: 'abc', KEY_PREFIX: 'p1' };
    expect(loadSettings(env, {}, ['redisUrl', 'keyPrefix'])).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      keyPrefix: 'p1',
    });
    expect(() => loadSettings({ REDIS_URL: 'http://x' }, {}, ['redisUrl'])).toThrow(/REDIS_URL/);
    expect(() => loadConfig(env)).toThrow(/THREADS/);
  });

  it('never prints the Redis password', () => {
    expect(redactUrl('rediss://worker:s3cret@redis:6380/0')).toBe(
      'rediss://worker:***@redis:6380/0',
    );
    expect(() => loadConfig({ REDIS_URL: 'redis://u:s3cret@h:x' })).not.toThrow(/s3cret/);
  });

  it('defaults threads so threads x intra-op threads never exceeds the cores', () => {
    const cores =
      (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
        ?.hardwareConcurrency ?? 2;
    expect(resolveThreads({ threads: undefined, intraOpThreads: 1 }) * 1).toBeLessThanOrEqual(
      Math.max(cores, 1),
    );
    expect(resolveThreads({ threads: undefined, intraOpThreads: 64 })).toBe(1);
    expect(resolveThreads({ threads: 3, intraOpThreads: 2 })).toBe(3);
  });

  it('derives every flag from its env name', () => {
    expect(flagName(SETTINGS.redisUrl.env)).toBe('--redis-url');
    expect(flagName(SETTINGS.maxBatchTokens.env)).toBe('--max-batch-tokens');
  });
});

describe('model table', () => {
  it('parses names, hub ids, local paths and options', () => {
    const specs = parseModelTable(
      'minilm=Xenova/all-MiniLM-L6-v2,tiny=./models/tiny;dtype=fp32;maxTokens=128;normalize=false',
      '/srv',
    );
    expect(specs).toEqual([
      { name: 'minilm', ref: 'Xenova/all-MiniLM-L6-v2', local: false, dtype: 'q8' },
      {
        name: 'tiny',
        ref: '/srv/models/tiny',
        local: true,
        dtype: 'fp32',
        maxTokens: 128,
        normalize: false,
      },
    ]);
    expect(parseModelTable(formatModelTable(specs), '/srv')).toEqual(specs);
  });

  it('takes chunking defaults for local and remote models, kept out of the sink model ref', () => {
    const specs = parseModelTable(
      'pages=./models/tiny;dtype=fp32;chunk=true;chunkWindow=128;chunkOverlap=16,' +
        'remote=openai:text-embedding-3-small;chunkWindow=4096,plain=./models/tiny;dtype=fp32',
      '/srv',
    );
    expect(specs.map((s) => s.chunk)).toEqual([
      { on: true, window: 128, overlap: 16 },
      { on: true, window: 4096 },
      undefined,
    ]);
    expect(parseModelTable(formatModelTable(specs), '/srv')).toEqual(specs);
    // Chunking does not change a text's vector: a sink table keeps serving the model.
    expect(modelRef(specs[0] as ModelSpec)).toBe(modelRef(specs[2] as ModelSpec));
  });

  it('takes the shorter sizes of a Matryoshka model, local or remote, kept out of the sink model ref', () => {
    const specs = parseModelTable(
      'nomic=./models/nomic;matryoshka=512|256|256,remote=openai:text-embedding-3-small;dimensions=1536;matryoshka=256|1024,plain=./models/nomic',
      '/srv',
    );
    expect(specs.map((s) => s.matryoshka)).toEqual([[256, 512], [256, 1024], undefined]);
    // A remote model's own dimensions (what its provider is asked for) is another option.
    expect(specs[1]?.remote?.dimensions).toBe(1536);
    expect(parseModelTable(formatModelTable(specs), '/srv')).toEqual(specs);
    // Cutting happens at the gateway: the computed vector, and so the stored one, is the same.
    expect(modelRef(specs[0] as ModelSpec)).toBe(modelRef(specs[2] as ModelSpec));
  });

  it.each([
    ['a=x;matryoshka=0', /matryoshka: "0" is not a size/],
    ['a=x;matryoshka=256,512', /"512" is not name=model/],
    ['a=x;matryoshka=256|x', /matryoshka: "x" is not a size/],
    ['Bad=x', /model name/],
    ['a=x;colour=red', /colour/],
    ['a=x;dtype=int4', /dtype/],
    ['a=x,a=y', /twice/],
    ['a', /name=model/],
    ['a=x;chunk=yes', /chunk/],
    ['a=x;chunkWindow=4', /chunkWindow/],
    ['a=x;chunkWindow=64;chunkOverlap=32', /chunkOverlap must be under half of chunkWindow/],
    ['a=openai:m;chunk=true;rpm=0', /rpm/],
  ])('rejects %s', (table, message) => {
    expect(() => parseModelTable(table)).toThrow(message);
  });
});
