/** README's configuration table is the settings table: every setting, its default, no strays. */
import fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { SETTINGS } from '../src/config/settings.js';

const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const table = readme.slice(
  readme.indexOf('<!-- settings:start -->'),
  readme.indexOf('<!-- settings:end -->'),
);

describe('README configuration table', () => {
  it('lists every setting with its default (regenerate: node scripts/settings-table.mjs)', () => {
    for (const s of Object.values(SETTINGS)) {
      const row = table.split('\n').find((l) => l.startsWith(`| \`${s.env}\``));
      expect(row, s.env).toBeDefined();
      if (s.default !== undefined && s.default !== '')
        expect(row).toContain(`\`${String(s.default)}\``);
    }
  });

  it('names no variable that is not a setting', () => {
    const names = [...table.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]);
    const known = new Set(Object.values(SETTINGS).map((s) => s.env));
    expect(names.filter((n) => !known.has(n as string))).toEqual([]);
  });

  it('gives the two quick-start commands', () => {
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toMatch(/^npm test/m);
  });
});
