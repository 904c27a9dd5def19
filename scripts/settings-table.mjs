#!/usr/bin/env node
// Rewrites README.md's configuration table from src/config/settings.ts (via dist/),
// between the settings markers, so the table never drifts from the code.
// Usage: npm run build && node scripts/settings-table.mjs
import fs from 'node:fs';

const { SETTINGS, choicesOf } = await import('../dist/src/config/settings.js');
const readme = new URL('../README.md', import.meta.url);
const rows = Object.values(SETTINGS).map((s) => {
  const def = s.default === undefined || s.default === '' ? '—' : `\`${String(s.default)}\``;
  const choices = choicesOf(s.schema);
  const doc = choices ? `${s.doc} One of: ${choices.map((c) => `\`${c}\``).join(', ')}.` : s.doc;
  return `| \`${s.env}\` | ${def} | ${doc.replace(/\|/g, '\\|')} |`;
});
const table = ['| env / flag | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
const text = fs.readFileSync(readme, 'utf8');
const out = text.replace(
  /(<!-- settings:start -->\n)[\s\S]*?(\n<!-- settings:end -->)/,
  `$1${table}$2`,
);
if (out === text && !text.includes('<!-- settings:start -->'))
  throw new Error('README.md has no settings markers');
fs.writeFileSync(readme, out);
