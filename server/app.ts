import fs from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { ResolvedConfig } from '../core/config/load.ts';
import { DicomflowEvents } from '../core/events.ts';
import { Receiver } from '../core/receive.ts';
import { ObjectStore } from '../core/store/object-store.ts';
import { SqliteIndex } from '../core/store/sqlite/sqlite-index.ts';
import { startDicomServer, type DicomServer } from './dimse/dicom-server.ts';
import { FindService } from './dimse/find.ts';
import { AssociationStats } from './dimse/scp.ts';
import { loadOrCreateAdminToken } from './http/auth.ts';
import { startHttpServer } from './http/http-server.ts';

export interface RunningServer {
  config: ResolvedConfig;
  dicomPort: number;
  httpPort: number;
  adminToken: string;
  events: DicomflowEvents;
  index: SqliteIndex;
  objects: ObjectStore;
  log: Logger;
  close(): Promise<void>;
}

/** Starts everything `dicomflow serve` runs, wired in the one direction of the flow. */
export async function startServer(config: ResolvedConfig, log: Logger = pino({ level: config.log.level })): Promise<RunningServer> {
  const startedAt = Date.now();
  fs.mkdirSync(config.dataDir, { recursive: true });
  const objects = new ObjectStore(path.join(config.dataDir, 'storage'));
  const removed = objects.removeIncoming();
  if (removed > 0) log.warn({ removed }, 'removed half-received objects left by an interrupted run (never acknowledged)');
  const index = new SqliteIndex(path.join(config.dataDir, 'index.sqlite'));
  const events = new DicomflowEvents();

  // Free space is polled, not checked per object: statfs per C-STORE would cost more than it saves.
  let freeBytes = await objects.freeBytes();
  const minFree = config.storage.minFreeMegabytes * 1024 * 1024;
  const freeSpacePoll = setInterval(() => {
    objects.freeBytes().then((b) => (freeBytes = b), (err) => log.error({ err }, 'statfs failed'));
  }, 1000);
  freeSpacePoll.unref();

  const receiver = new Receiver({
    objects,
    index,
    events,
    duplicatePolicy: config.storage.duplicatePolicy,
    log: log.child({ component: 'receive' }),
    storeIsFull: () => freeBytes < minFree,
  });
  const associations = new AssociationStats();
  const dimseLog = log.child({ component: 'dimse' });
  const d = config.dimse;
  const dicom: DicomServer = await startDicomServer(
    {
      settings: {
        aeTitle: d.aeTitle,
        maxPduLength: d.maxPduLength,
        maxAssociations: d.maxAssociations,
        checkCalledAeTitle: d.checkCalledAeTitle,
        allowedCallers: d.allowedCallers,
        acceptUnknownSopClasses: d.acceptUnknownSopClasses,
        databaseByAeTitle: new Map(config.databases.filter((db) => db.aeTitle).map((db) => [db.aeTitle!, db.name])),
        defaultDatabase: config.defaultDatabase,
      },
      receiver,
      find: new FindService(index),
      stats: associations,
      log: dimseLog,
    },
    { host: d.host, port: d.port, associationTimeoutMs: d.associationTimeoutSeconds * 1000, pduTimeoutMs: d.pduTimeoutSeconds * 1000 },
  );

  const { token, file: tokenFile, created } = loadOrCreateAdminToken(config.dataDir);
  if (created) log.info({ tokenFile }, 'created the administrator API token');

  const status = () => ({
    dicom: {
      aeTitle: d.aeTitle,
      host: d.host,
      port: dicom.port,
      maxPduLength: d.maxPduLength,
      associations: { open: associations.open, total: associations.total, rejected: associations.rejected, aborted: associations.aborted },
    },
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    startedAt: new Date(startedAt).toISOString(),
    received: {
      objects: receiver.stats.objectsReceived,
      bytes: receiver.stats.bytesReceived,
      failures: receiver.stats.failures,
      duplicates: receiver.stats.duplicates,
      lastArrivalAt: receiver.stats.lastArrivalAt ?? null,
    },
    storage: { dataDir: config.dataDir, freeBytes, minFreeBytes: minFree, refusingNewObjects: freeBytes < minFree },
    databases: config.databases.map((db) => ({ name: db.name, aeTitle: db.aeTitle ?? null, ...index.totals(db.name) })),
  });
  const http = await startHttpServer(
    {
      status,
      health: () => ({ ok: true, dicom: true, index: true }),
    },
    { host: config.http.host, port: config.http.port, adminToken: token, log },
  );
  log.info({ aeTitle: d.aeTitle, dicomPort: dicom.port, httpPort: http.port, dataDir: config.dataDir }, 'dicomflow is ready');

  return {
    config,
    dicomPort: dicom.port,
    httpPort: http.port,
    adminToken: token,
    events,
    index,
    objects,
    log,
    async close() {
      clearInterval(freeSpacePoll);
      await http.close();
      await dicom.close();
      index.close();
    },
  };
}
