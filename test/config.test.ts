import { describe, expect, it } from 'vitest';

import { loadConfig, loadSettings, redactUrl, resolveThreads } from '../src/config/load.js';
import { flagName, SETTINGS } from '../src/config/settings.js';
import { formatModelTable, parseModelTable } from '../src/models/table.js';

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

  it.each([
    ['Bad=x', /model name/],
    ['a=x;colour=red', /colour/],
    ['a=x;dtype=int4', /dtype/],
    ['a=x,a=y', /twice/],
    ['a', /name=model/],
  ])('rejects %s', (table, message) => {
    expect(() => parseModelTable(table)).toThrow(message);
  });
});
