import { AsyncLocalStorage } from 'node:async_hooks';
import { dfError } from '../../errors.ts';

/** The transaction a piece of async code runs inside: its database, while it is open. */
interface Scope {
  db: object;
  open: boolean;
}

const current = new AsyncLocalStorage<Scope>();

/**
 * Runs fn as the body of a transaction on db. Code that fn starts (its awaits, and callbacks it
 * schedules) is known to be inside it until the transaction ends.
 */
export async function insideTransaction<T>(db: object, fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { db, open: true };
  try {
    return await current.run(scope, fn);
  } finally {
    scope.open = false;
  }
}

/**
 * A statement on the database itself from inside one of its transactions would run outside the
 * transaction (PostgreSQL: another connection) or wait for it to end (SQLite: the one writer),
 * so it is refused: the body must use its transaction handle.
 */
export function refuseInsideTransaction(db: object, what: string): void {
  const scope = current.getStore();
  if (scope?.open && scope.db === db) {
    throw dfError('DF_ERR_INTERNAL', `${what} on the database inside one of its transactions: use the transaction's handle`);
  }
}
