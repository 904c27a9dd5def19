#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm run build`.
// A fresh clone has no dist/ (`npm ci` runs no scripts, see .npmrc): build it
// once, on the first run, so `npm ci && npm run demo` works as it reads.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!fs.existsSync(main)) {
  console.error('streambed: building dist/ (first run after npm ci) ...');
  const built = spawnSync('npm', ['run', 'build', '--silent'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (built.status !== 0) {
    console.error('streambed: the build failed; run `npm run build` to see why');
    process.exit(1);
  }
}
import(main.href).catch((err) => {
  console.error(err);
  process.exit(1);
});
