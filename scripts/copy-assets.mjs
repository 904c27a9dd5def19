#!/usr/bin/env node
// `npm run build` step: tsc compiles only TypeScript, so the web console's
// page, script and style are copied next to the compiled server (dist/ is
// what the package ships; see src/console/server.ts).
import fs from 'node:fs';

const from = new URL('../src/console/assets/', import.meta.url);
const to = new URL('../dist/src/console/assets/', import.meta.url);
fs.rmSync(to, { recursive: true, force: true });
fs.cpSync(from, to, { recursive: true });
