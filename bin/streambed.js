#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm run build` (run by npm ci's prepare).
import('../dist/src/cli/main.js').catch((err) => {
  console.error(err);
  process.exit(1);
});
