import type { FastifyInstance } from 'fastify';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { serverLogger } from './logger.ts';
import type { ResolvedConfig } from '../core/config/load.ts';
import { DicomflowEvents } from '../core/events.ts';
import { Receiver } from '../core/receive/receive.ts';
import { ObjectStore } from '../core/store/object-store.ts';
import { prepareDataDir } from '../core/store/data-dir.ts';
import { SqlIndex } from '../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../core/store/sql/open.ts';
import { SqlPseudonyms } from '../core/store/sql/sql-pseudonyms.ts';
import { SqlNodes } from '../core/store/sql/sql-nodes.ts';
import { startDicomServer, type DicomServer } from './dimse/dicom-server.ts';
import { FindService } from './dimse/find.ts';
import { MoveService } from './dimse/move.ts';
import { GetService } from './dimse/get.ts';
import { AssociationStats } from './dimse/scp.ts';
import { userIdentityVerifier } from './dimse/user-identity.ts';
import { accessPolicy, decideAccess, hostsOf } from './dimse/access.ts';
import { PeerHosts } from './dimse/peer-hosts.ts';
import { loadOrCreateAdminToken } from './http/auth.ts';
import { startHttpServer } from './http/http-server.ts';
import { webRoot } from './http/web.ts';
import { SqlApiTokens } from '../core/store/sql/sql-tokens.ts';
import { BOOTSTRAP_ADMIN, Users } from '../core/users.ts';
import { loadPipeline } from '../core/pipeline/load.ts';
import { Engine } from '../core/engine.ts';
import type { EngineServices } from '../core/jobs/services.ts';
import { PipelineSet } from '../core/trigger/pipeline-set.ts';
import { formatProblem } from '../core/pipeline/load.ts';
import { configuredPlugins } from '../core/plugin-registry.ts';
import { sqlJobStores } from '../core/store/sql/sql-job-stores.ts';
import type { JobQueue } from '../core/store/job-queue.ts';
import type { JobStores } from '../core/store/job-store.ts';
import { markCleanStop, verifyAfterUncleanStop } from '../core/lifecycle/recovery.ts';
import { FreeSpaceGuard } from '../core/lifecycle/free-space.ts';
import { SqlOutbox } from '../core/store/sql/sql-outbox.ts';
import { ClusterNode } from './cluster-node.ts';
import { OutboxSender } from './route/outbox-sender.ts';
import { DicomdirStore } from '../core/store/dicomdir-store.ts';
import { createStepPool } from '../workers/pool.ts';
import { WatchFolder } from './import/watch-folder.ts';
import { nodeMetrics, nodeStatus, type NodeParts } from './node-status.ts';

export interface RunningServer {
  config: ResolvedConfig;
  dicomPort: number;
  httpPort: number;
  /** The HTTP API's Fastify instance (its routes, for the tests that check each one's access). */
  httpApp: FastifyInstance;
  adminToken: string;
  events: DicomflowEvents;
  engine: Engine;
  pipelines: PipelineSet;
  jobs: JobQueue;
  /** The engine's stores by stage (arrivals, trigger groups, the job queue, object lifecycle). */
  jobStores: JobStores;
  watchFolders: WatchFolder[];
  index: SqlIndex;
  objects: ObjectStore;
  /** Routing: delivers the outbox to remoteNodes (status(): per-destination figures). */
  outbox: OutboxSender;
  users: Users;
  tokens: SqlApiTokens;
  /** This node among those sharing the index (one, on SQLite). */
  cluster: ClusterNode;
  log: Logger;
  close(): Promise<void>;
}

const CLEAN_STOP_MARKER = '.clean-stop';
// Host names in the DICOM access rules are looked up again this often.
const PEER_HOSTS_REFRESH_MS = 60_000;
/** One node per host is the usual deployment; several on one host set cluster.nodeName each. */
function defaultNodeName(): string {
  return (
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.:-]/g, '-')
      .slice(0, 64) || 'dicomflow'
  );
}

/** Starts everything `dicomflow serve` runs, wired in the one direction of the flow. */
export async function startServer(config: ResolvedConfig, log: Logger = serverLogger(config.log)): Promise<RunningServer> {
  const startedAt = Date.now();
  // Patient data is not for other local users: whatever umask the server was started with, what
  // it and its steps' worker processes create is 0600 (directories 0700), as PostgreSQL does.
  process.umask(0o077);
  const dataDir = prepareDataDir(config.dataDir);
  if (dataDir.openMode !== undefined) {
    log.warn(
      { code: 'DF_ERR_DATA_DIR_PERMISSIONS', dataDir: config.dataDir, mode: dataDir.openMode.toString(8).padStart(4, '0') },
      'the data directory can be read or entered by other users; chmod 700 it',
    );
  }
  // On PostgreSQL several nodes may share the data directory: each keeps its own incoming
  // folder, clean-stop marker and endpoint file there, and its own leases in the index.
  const clustered = config.index.backend === 'postgres';
  const nodeName = config.cluster.nodeName ?? defaultNodeName();
  // What is kept per node on a shared data directory, named by the node.
  const ownFolder = clustered ? nodeName : undefined;
  const leaseMs = config.cluster.leaseSeconds * 1000;
  log = log.child({ node: nodeName });
  const objects = new ObjectStore(path.join(config.dataDir, 'storage'), { node: ownFolder });
  const removed = objects.removeIncoming();
  if (removed > 0) log.warn({ removed }, 'removed half-received objects left by an interrupted run (never acknowledged)');
  const db = await openIndexDatabase({ dataDir: config.dataDir, index: config.index, nodeName });
  const index = new SqlIndex(db, { node: ownFolder });
  const cleanStopMarker = path.join(config.dataDir, ownFolder ? `${CLEAN_STOP_MARKER}.${ownFolder}` : CLEAN_STOP_MARKER);
  await verifyAfterUncleanStop(cleanStopMarker, index, objects, log);
  // Rows filed before the match-key columns existed get their keys in the background: until then
  // C-FIND reads them and the matcher decides (right, only slower).
  let keyingStopped = false;
  const keying = index.keyPendingRows({ stopped: () => keyingStopped }).then(
    (keyed) => keyed > 0 && log.info({ keyed }, 'match keys computed for rows filed before they existed'),
    (err: unknown) =>
      log.warn({ code: 'DF_ERR_INTERNAL', err }, 'computing the match keys of older rows failed; C-FIND reads them unkeyed'),
  );
  const events = new DicomflowEvents(log.child({ component: 'events' }));

  // Bytes written count against the free space until the next poll (lifecycle/free-space.ts).
  const freeSpace = new FreeSpaceGuard({
    objects,
    minFreeBytes: config.storage.minFreeMegabytes * 1024 * 1024,
    bytesWritten: () => receiver.stats.bytesReceived + receiver.stats.bytesProduced,
    log,
  });
  await freeSpace.start();
  const storeIsFull = () => freeSpace.isFull();

  const receiver = new Receiver({
    objects,
    index,
    events,
    duplicatePolicy: config.storage.duplicatePolicy,
    log: log.child({ component: 'receive' }),
    storeIsFull,
    // Called on receive only, after the pipelines below are loaded.
    extraAttributes: () => pipelines.conditionAttributes(),
    // The engine's filing-only pipelines (the default store-received) file in the arrival's commit.
    filing: { decide: (arrival) => engine.arrivalFiling.decide(arrival), committed: (outcome) => engine.arrivalFiling.committed(outcome) },
  });
  const jobStores = sqlJobStores(db);
  const jobs = jobStores.queue;
  const plugins = await configuredPlugins(config);
  const databaseNames = config.databases.map((db) => db.name);
  const remoteNodeNames = config.remoteNodes.map((n) => n.aeTitle);
  const pipelines = new PipelineSet(
    config.pipelinesDir,
    plugins,
    { databases: databaseNames, remoteNodes: remoteNodeNames, printers: config.printers.map((p) => p.name) },
    { defaultPipeline: config.defaultPipeline, events },
  );
  const engineLog = log.child({ component: 'engine' });
  const reportPipelines = () => {
    const loaded = pipelines.all().map((p) => p.definition.name);
    for (const p of pipelines.problems()) engineLog.error({ code: 'DF_ERR_PIPELINE_INVALID' }, formatProblem(p));
    // A disabled pipeline's gaps (an example waiting for a printer or a PACS) are no fault: they
    // become errors when it is enabled; until then they are named once in the line below.
    const warnings = pipelines.warnings();
    for (const p of warnings) engineLog.debug(`${formatProblem(p)} (disabled pipeline: configure this before enabling it)`);
    const needConfiguration = [...new Set(warnings.map((p) => path.basename(p.file, '.json')))];
    engineLog.info(
      { pipelinesDir: config.pipelinesDir, loaded, ...(needConfiguration.length > 0 && { disabledNeedConfiguration: needConfiguration }) },
      'pipelines loaded',
    );
    if (pipelines.enabled().length === 0)
      engineLog.warn('no pipeline is enabled: received objects are kept in storage but filed into no database');
  };
  events.on('PipelinesReloaded', reportPipelines);
  pipelines.reload();
  pipelines.watch((err) => engineLog.error({ err }, 'pipeline directory watch failed'), { pollMs: clustered ? 5000 : undefined });
  const pool = createStepPool({
    threads: config.engine.workerThreads,
    maxOldGenerationSizeMb: config.engine.workerMaxMemoryMb,
    isolation: config.engine.isolation,
    // Under the data directory (0700): code loaded from a cache must be no one else's to write.
    compileCacheDir: path.join(config.dataDir, 'cache', ownFolder ?? '', 'compile'),
  });
  // Routing: the route step queues into the outbox, the sender delivers (started before the engine).
  const outbox = new SqlOutbox(db, path.join(config.dataDir, 'outbox'));
  const outboxSender = new OutboxSender({
    outbox,
    owner: nodeName,
    shared: clustered,
    leaseMs,
    destinations: config.remoteNodes,
    callingAeTitle: config.dimse.aeTitle,
    log: log.child({ component: 'outbox' }),
    workDir: path.join(config.dataDir, 'outbox-work', ownFolder ?? ''),
  });
  const services: EngineServices = {
    index,
    jobs,
    lifecycle: jobStores.lifecycle,
    databases: databaseNames,
    defaultDatabase: config.defaultDatabase,
    duplicatePolicy: config.storage.duplicatePolicy,
    outbox,
    remoteNodes: remoteNodeNames,
    printers: config.printers.map(({ name, uri }) => ({ name, uri })),
    pseudonyms: new SqlPseudonyms(db),
  };
  const engine = new Engine({
    nodeId: nodeName,
    leaseMs,
    shared: clustered,
    stores: jobStores,
    pipelines,
    events,
    pool,
    jobsDir: path.join(config.dataDir, 'jobs'),
    log: engineLog,
    concurrency: config.engine.concurrency,
    workerThreads: config.engine.workerThreads ?? os.availableParallelism(),
    services,
    removeObject: (p) => objects.remove(p),
    objectPath: (p) => objects.absolutePath(p),
    storeEmittedInstance: async (file, job) => {
      const result = await receiver.receiveFile(file, {
        source: 'pipeline',
        database: config.defaultDatabase,
        createdBy: `pipeline ${job.pipeline}`,
        userName: job.createdBy,
      });
      if (!result.ok) throw result.error;
      return { sopInstanceUid: result.sopInstanceUid, arrivalId: result.record.arrivalId };
    },
  });
  events.on('InstanceReceived', (arrival) => {
    if (!arrival.settled) engine.notifyArrival();
  });

  const { token, file: tokenFile, created } = loadOrCreateAdminToken(config.dataDir);
  if (created) log.info({ tokenFile }, 'created the administrator API token');
  // The bootstrap token's user is an admin unless the configuration defines "admin" itself.
  const users = new Users(config.users.some((u) => u.name === BOOTSTRAP_ADMIN.name) ? config.users : [...config.users, BOOTSTRAP_ADMIN]);
  const tokens = new SqlApiTokens(db);

  const associations = new AssociationStats();
  const dimseLog = log.child({ component: 'dimse' });
  const d = config.dimse;
  const access = accessPolicy(config);
  const peerHosts = new PeerHosts(hostsOf(access), dimseLog);
  await peerHosts.start(PEER_HOSTS_REFRESH_MS);
  const dicom: DicomServer = await startDicomServer(
    {
      settings: {
        aeTitle: d.aeTitle,
        maxPduLength: d.maxPduLength,
        maxAssociations: d.maxAssociations,
        maxAssociationsPerPeer: d.maxAssociationsPerPeer,
        checkCalledAeTitle: d.checkCalledAeTitle,
        allowedCallers: d.allowedCallers,
        acceptUnknownSopClasses: d.acceptUnknownSopClasses,
        databaseByAeTitle: new Map(config.databases.filter((db) => db.aeTitle).map((db) => [db.aeTitle!, db.name])),
        defaultDatabase: config.defaultDatabase,
        requireUserIdentity: d.requireUserIdentity,
        verifyUser: userIdentityVerifier({ users, tokens, adminToken: token }),
        access: (caller, target) => decideAccess(access, target, caller, peerHosts.addressesOf),
      },
      receiver,
      find: new FindService(),
      index,
      dicomdirStores: new Map(config.dicomdirStores.map((d) => [d.aeTitle, new DicomdirStore(d.root)])),
      move: new MoveService(objects, config.remoteNodes, d.aeTitle),
      get: new GetService(objects),
      stats: associations,
      log: dimseLog,
    },
    {
      host: d.host,
      port: d.port,
      timeouts: { artimMs: d.artimTimeoutSeconds * 1000, idleMs: d.associationTimeoutSeconds * 1000, dimseMs: d.pduTimeoutSeconds * 1000 },
      tls: d.tls && {
        port: d.tls.port,
        key: fs.readFileSync(d.tls.keyFile),
        cert: fs.readFileSync(d.tls.certFile),
        ca: d.tls.caFile === undefined ? undefined : fs.readFileSync(d.tls.caFile),
        requireClientCertificate: d.tls.requireClientCertificate,
        plain: !d.tls.only,
      },
    },
  );

  const cluster = new ClusterNode({
    nodes: new SqlNodes(db),
    name: nodeName,
    backend: config.index.backend,
    location: db.location,
    log,
    report: () => ({
      dicom: { aeTitle: d.aeTitle, host: d.host, port: dicom.port },
      http: { host: config.http.host, port: httpPort },
      jobs: { running: engine.runningJobs, concurrency: config.engine.concurrency },
      pool: pool.utilization(),
      received: { objects: receiver.stats.objectsReceived, bytes: receiver.stats.bytesReceived },
      produced: { objects: receiver.stats.objectsProduced, bytes: receiver.stats.bytesProduced },
      associationsOpen: associations.open,
    }),
  });
  let httpPort = 0;

  await outboxSender.start();
  await engine.start();
  await cluster.start();
  const watchFolders = config.watchFolders.map(
    (w) =>
      new WatchFolder(
        {
          path: w.path,
          database: w.database ?? config.defaultDatabase,
          stableSeconds: w.stableSeconds,
          pollSeconds: w.pollSeconds,
          node: nodeName,
        },
        receiver,
        log.child({ component: 'import' }),
      ),
  );
  watchFolders.forEach((w) => w.start());

  // The index's figures are read together, off the event loop where they can take long.
  const parts: NodeParts = {
    config,
    startedAt,
    dicom,
    associations,
    access,
    receiver,
    freeSpace,
    watchFolders,
    pipelines,
    cluster,
    engine,
    jobs,
    index,
    outboxSender,
    pool,
  };
  const http = await startHttpServer(
    {
      status: nodeStatus(parts),
      metrics: nodeMetrics(parts),
      users,
      tokens,
      adminToken: token,
      engine,
      jobs,
      pipelines,
      outbox: {
        status: () => outboxSender.status(),
        isDestination: (aeTitle) => outboxSender.isDestination(aeTitle),
        store: outbox,
        wake: () => outboxSender.wake(),
      },
      validatePipeline: (text) => loadPipeline(text, '(posted)', plugins, { databases: databaseNames }).problems,
      index,
      databases: config.databases,
      events,
      receiver,
      objectPath: (p) => objects.absolutePath(p),
      eventStreams: config.http.eventStreams,
      webRoot: webRoot(),
      log,
    },
    {
      host: config.http.host,
      port: config.http.port,
      https: config.http.tls && { key: fs.readFileSync(config.http.tls.keyFile), cert: fs.readFileSync(config.http.tls.certFile) },
    },
  );
  httpPort = http.port;
  // Lets the CLI on this machine find the API of the server that owns this data directory.
  const endpointFile = clustered ? path.join(config.dataDir, 'servers', `${nodeName}.json`) : path.join(config.dataDir, 'server.json');
  fs.mkdirSync(path.dirname(endpointFile), { recursive: true });
  const endpoint = {
    pid: process.pid,
    hostname: os.hostname(),
    node: nodeName,
    httpPort: http.port,
    httpHost: config.http.host,
    scheme: config.http.tls ? 'https' : 'http',
  };
  fs.writeFileSync(endpointFile, JSON.stringify(endpoint));
  log.info({ aeTitle: d.aeTitle, dicomPort: dicom.port, httpPort: http.port, dataDir: config.dataDir }, 'dicomflow is ready');

  return {
    config,
    dicomPort: dicom.port,
    httpPort: http.port,
    httpApp: http.app,
    adminToken: token,
    events,
    engine,
    pipelines,
    jobs,
    jobStores,
    index,
    objects,
    outbox: outboxSender,
    users,
    tokens,
    cluster,
    log,
    watchFolders,
    async close() {
      freeSpace.stop();
      watchFolders.forEach((w) => w.stop());
      fs.rmSync(endpointFile, { force: true });
      await http.close();
      await dicom.close();
      peerHosts.stop();
      pipelines.close();
      await engine.close();
      await outboxSender.close();
      await pool.destroy();
      objects.close();
      await cluster.stop();
      keyingStopped = true;
      await keying;
      await index.close();
      // Last, once nothing is received or written any more.
      markCleanStop(cleanStopMarker, log);
    },
  };
}
