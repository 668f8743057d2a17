import { defineConfig } from 'vitest/config';

// Integration tests start real servers and DCMTK peers; 2 cores, so keep parallelism low.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'plugins/**/*.test.ts', 'core/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
  },
});
