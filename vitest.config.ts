import { defineConfig } from 'vitest/config';

// Test files talk to a real Redis and spawn real processes: generous timeouts,
// and files run in parallel forks (each uses its own random key prefix).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
  },
});
