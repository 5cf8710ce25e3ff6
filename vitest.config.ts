import { defineConfig } from 'vitest/config';

// Files that load the native addon run in forked processes (native addons and worker threads don't mix well).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup-dist.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
