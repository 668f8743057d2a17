import path from 'node:path';
import pino from 'pino';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { DicomflowEvents } from '../../core/events.ts';
import { Receiver } from '../../core/receive.ts';
import { ObjectStore } from '../../core/store/object-store.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';

/**
 * The receive path for commands that write arrivals into a data directory themselves (import,
 * replication): the running server's engine (or the next one to start) runs the pipelines on them.
 */
export function openStandaloneReceiver(config: ResolvedConfig): { receiver: Receiver; index: SqlIndex; close(): void } {
  const objects = new ObjectStore(path.join(config.dataDir, 'storage'));
  const index = new SqlIndex(openIndexDatabase(config));
  const log = pino({ level: 'silent' });
  const receiver = new Receiver({
    objects,
    index,
    events: new DicomflowEvents(log),
    duplicatePolicy: config.storage.duplicatePolicy,
    log,
    storeIsFull: () => false,
  });
  return {
    receiver,
    index,
    close: () => {
      objects.close();
      index.close();
    },
  };
}
