import path from 'node:path';
import pino from 'pino';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { DicomflowEvents } from '../../core/events.ts';
import { filingOnArrival } from '../../core/arrivals/arrival-filing.ts';
import { PipelineSet } from '../../core/trigger/pipeline-set.ts';
import { configuredPlugins } from '../../core/plugin-registry.ts';
import { Receiver } from '../../core/receive/receive.ts';
import { ObjectStore } from '../../core/store/object-store.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';

/**
 * The receive path for commands that write arrivals into a data directory themselves (import,
 * replication): the running server's engine (or the next one to start) runs the pipelines on them.
 * Filing-only pipelines (the default store-received) file here, in each arrival's commit, as the
 * server does: what the command reports as received is in its database when it exits.
 */
export async function openStandaloneReceiver(
  config: ResolvedConfig,
): Promise<{ receiver: Receiver; index: SqlIndex; close(): Promise<void> }> {
  const objects = new ObjectStore(path.join(config.dataDir, 'storage'));
  const index = new SqlIndex(await openIndexDatabase(config));
  const log = pino({ level: 'silent' });
  const env = {
    databases: config.databases.map((d) => d.name),
    remoteNodes: config.remoteNodes.map((n) => n.aeTitle),
    printers: config.printers.map((p) => p.name),
  };
  const pipelines = new PipelineSet(config.pipelinesDir, await configuredPlugins(config), env, { defaultPipeline: config.defaultPipeline });
  pipelines.reload();
  const defaults = { defaultDatabase: config.defaultDatabase, duplicatePolicy: config.storage.duplicatePolicy };
  const receiver = new Receiver({
    objects,
    index,
    events: new DicomflowEvents(log),
    duplicatePolicy: config.storage.duplicatePolicy,
    log,
    storeIsFull: () => false,
    // The attributes the pipelines' conditions test, as the server decodes them.
    extraAttributes: () => pipelines.conditionAttributes(),
    // Released bytes are collected by the server's engine.
    filing: { decide: (arrival) => filingOnArrival(pipelines.enabled(), arrival, defaults), committed: () => {} },
  });
  return {
    receiver,
    index,
    close: async () => {
      objects.close();
      await index.close();
    },
  };
}
