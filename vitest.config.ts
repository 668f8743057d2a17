import { defineConfig } from 'vitest/config';

// The suites that touch the index run twice: on SQLite (the embedded default) and on a
// throwaway PostgreSQL cluster (test/postgres-global-setup.ts), as several nodes use it.
const onBothBackends = [
  'core/store/**/*.test.ts',
  'plugins/route/*.test.ts',
  'plugins/deidentify/deidentify.test.ts',
  'test/integration/seed-deidentify-and-route.test.ts',
  'test/integration/pipeline.test.ts',
  'test/integration/route.test.ts',
  'test/integration/receive.test.ts',
  'test/integration/recovery.test.ts',
  'test/integration/databases.test.ts',
  'test/integration/http-api.test.ts',
  'test/integration/delete-study.test.ts',
  'test/integration/dicomweb.test.ts',
  'test/integration/filing.test.ts',
  // C-FIND reads the index's match keys in SQL: the same answers on both back ends.
  'test/integration/find.test.ts',
  'test/integration/find-stream.test.ts',
  'test/integration/find-stored-values.test.ts',
];

// Integration tests start real servers and DCMTK peers; 2 cores, so keep parallelism low.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    // The run ends with what it skipped and why (a missing peer must not hide coverage).
    reporters: ['default', './test/skip-reporter.ts'],
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'sqlite',
          globalSetup: ['test/web-global-setup.ts'],
          include: ['test/**/*.test.ts', 'plugins/**/*.test.ts', 'core/**/*.test.ts', 'server/**/*.test.ts', 'workers/**/*.test.ts'],
          exclude: ['test/integration/cluster.test.ts', 'test/integration/cluster-crash.test.ts', 'test/integration/index-stall.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: [
            ...onBothBackends,
            'test/integration/cluster.test.ts',
            'test/integration/cluster-crash.test.ts',
            'test/integration/index-stall.test.ts',
          ],
          env: { DF_TEST_BACKEND: 'postgres' },
          globalSetup: ['test/postgres-global-setup.ts'],
        },
      },
    ],
  },
});
