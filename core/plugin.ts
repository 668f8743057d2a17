import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { EngineServices } from './jobs/services.ts';

/**
 * The plugin contract: a step is a plain object (no base class, no registration at import).
 *
 * Steps must be idempotent: after a crash a job runs again from its first step (at-least-once),
 * so a step that already wrote its output must be able to write it again without harm (write
 * to the job's directories, overwrite rather than append, key database rows by UID).
 */

/** One instance a job runs over. */
export interface StepInput {
  arrivalId: string;
  objectId: string;
  /** Absolute path of the original Part 10 file. */
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid?: string;
  studyInstanceUid?: string;
  attributes: Record<string, string>;
  source: string;
  callingAeTitle?: string;
  calledAeTitle?: string;
  peerAddress?: string;
  /** The user who imported or moved the object, when a person did. */
  userName?: string;
  /** Who is recorded as the creator (PMOD's rule: the calling AE title, the importing user…). */
  createdBy?: string;
  /** The database the arrival was addressed to (by called AE title). */
  database?: string;
  receivedAt: string;
}

export type OutputKind = 'file' | 'instance' | 'table';

export interface StepOutput {
  kind: OutputKind;
  /** Files and instances: absolute path; tables: the table name. */
  path?: string;
  name?: string;
  description?: string;
  rows?: Record<string, unknown>[];
  /** Instances: the identifying UIDs, filled by the engine. */
  sopInstanceUid?: string;
  /** Instances: the arrival the engine recorded when it stored the object (source "pipeline"). */
  arrivalId?: string;
}

export interface StepLogger {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

export interface JobInfo {
  id: string;
  pipeline: string;
  /** The pipeline version this job runs: the content hash of the definition it was queued with. */
  pipelineVersion: string;
  /**
   * The database the job works on: the one its inputs were addressed to (the first input that
   * names one), else the configured default database.
   */
  database: string;
  attempt: number;
  /** What fired the job: the level and UID for grouped triggers, and who contributed. */
  trigger: {
    on: 'instance' | 'series' | 'study' | 'manual' | 'rerun';
    uid?: string;
    callingAeTitles: string[];
    peerAddresses: string[];
  };
}

/** The dicomflow node running the step (cluster.nodeName; one node on SQLite). */
export interface NodeInfo {
  name: string;
}

export interface StepContext {
  job: JobInfo;
  node: NodeInfo;
  step: { id: string; index: number };
  /** The instances this step works on (earlier filter steps may have narrowed them). */
  inputs: StepInput[];
  /** Outputs of the earlier steps of this job, in order. */
  previousOutputs: StepOutput[];
  /** Private to this step and attempt; emptied before the step runs. */
  scratchDir: string;
  /** Where emitted files should be written so that they outlive the job's scratch space. */
  outputDir: string;
  signal: AbortSignal;
  /** Fraction done, 0–1. */
  progress(fraction: number, message?: string): void;
  log: StepLogger;
  emitFile(path: string, description?: string): void;
  /** A new DICOM object (Part 10 file) for later steps; the engine stores it as pipeline output. */
  emitInstance(path: string, description?: string): void;
  emitTable(name: string, rows: Record<string, unknown>[], description?: string): void;
  /** Narrow the inputs of the following steps (a filter step). */
  keepInputs(arrivalIds: string[]): void;
  /** End the pipeline here, successfully (nothing left to do). */
  stopPipeline(reason: string): void;
  /** Main-thread steps only: the engine's services (stores). Undefined in workers. */
  services?: EngineServices;
  /**
   * Runs `exportName` of the module at `moduleUrl` (a file URL) with `arg` and resolves with its
   * result: parallel work inside one step (the frames of a series). A main-thread step with
   * `usesPool` runs it in the worker pool, under the job's timeout and cancel; a worker step
   * runs it inline in its own worker (a worker waiting for the pool could deadlock it).
   * Worker processes (the default isolation) copy `arg` and the result; with thread isolation,
   * typed arrays in `arg` are moved when listed in `transferList`, and those in the result (top
   * level, or one level down in an array or object) are moved back.
   */
  runTask<R = unknown, A = unknown>(moduleUrl: string, exportName: string, arg: A, options?: { transferList?: Transferable[] }): Promise<R>;
}

/** How a step's runTask calls reach a thread. */
export type TaskRunner = (call: { moduleUrl: string; exportName: string; arg: unknown }, transferList: Transferable[]) => Promise<unknown>;

export type PluginKind = 'instances' | 'files' | 'tables';

export interface PluginDefinition<Options = Record<string, unknown>> {
  name: string;
  version: string;
  description: string;
  /** JSON Schema of the options; pipelines are validated against it when they load. */
  options: JSONSchema;
  /** 'worker' for CPU-heavy steps (run in the piscina pool), 'main' for quick I/O steps. */
  runsIn: 'main' | 'worker';
  /**
   * A main-thread step that orchestrates and fans its CPU work out to the pool with
   * ctx.runTask: its jobs share the lane of worker steps.
   */
  usesPool?: boolean;
  consumes: PluginKind[];
  produces: PluginKind[];
  /** Semver range of dicomflow versions this plugin works with. */
  engine?: string;
  defaultTimeoutSeconds?: number;
  /** Semantic checks at load time, beyond the schema (e.g. the database exists). */
  check?(
    options: Options,
    env: { databases: string[]; remoteNodes?: string[]; printers?: string[] },
  ): { pointer: string; message: string }[];
  run(ctx: StepContext, options: Options): Promise<void> | void;
}

/**
 * Types the options from the schema, so the two can never drift apart. The schema is inferred
 * as a literal; the options type is derived from it once.
 */
export function definePlugin<const S extends JSONSchema, O = FromSchema<S>>(plugin: PluginSpec<S, O>): PluginDefinition<O> {
  return plugin as unknown as PluginDefinition<O>;
}

type PluginSpec<S, O> = Omit<PluginDefinition<O>, 'options'> & { options: S };
