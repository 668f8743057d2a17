import type { TestProject } from 'vitest/node';
import { startPostgres, type PostgresCluster } from './helpers/postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

let cluster: PostgresCluster | undefined;

/** One throwaway PostgreSQL cluster for the postgres project; each test makes its own database in it. */
export async function setup(project: TestProject): Promise<void> {
  cluster = await startPostgres();
  project.provide('postgresUrl', cluster.url);
}

export function teardown(): void {
  cluster?.stop();
}
