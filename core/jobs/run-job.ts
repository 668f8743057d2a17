import fs from 'node:fs';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import type { Logger } from 'pino';
import { dfError, isDfError, type DfError } from '../errors.ts';
import type { LoadedPipeline, ResolvedStep } from '../pipeline/load.ts';
import type { StepInput, StepOutput } from '../plugin.ts';
import type { JobQueue, JobRecord } from '../store/job-queue.ts';
import type { EngineServices } from './services.ts';
import { createStepContext, type StepContextSeed, type StepEffects } from './step-context.ts';

/** Runs worker steps: implemented by the piscina pool in workers/pool.ts. */
export interface StepPool {
  run(
    task: Record<string, unknown>,
    options: { signal: AbortSignal; transferList: any[] },
  ): Promise<Omit<StepEffects, 'log'> & { failure?: { message: string; stack?: string; code?: string; log: StepEffects['log'] } }>;
  /** One ctx.runTask call of a main-thread step, on a pool thread. */
  runTask(
    call: { moduleUrl: string; exportName: string; arg: unknown },
    options: { signal: AbortSignal; transferList: Transferable[] },
  ): Promise<unknown>;
}

export interface RunJobDeps {
  queue: JobQueue;
  pool: StepPool;
  jobsDir: string;
  log: Logger;
  services: EngineServices;
  /** This node's name (ctx.node.name). */
  node: string;
  /** The absolute path of an object from its path relative to the object store. */
  objectPath(relative: string): string;
  /** Stores an instance a step emitted as pipeline output; returns its SOP Instance UID. */
  storeEmittedInstance(file: string, job: JobRecord): Promise<{ sopInstanceUid: string; arrivalId: string }>;
  onProgress(job: JobRecord, progress: number, message?: string): void;
}

export type JobOutcome = { status: 'succeeded'; stopReason?: string } | { status: 'failed'; error: DfError } | { status: 'cancelled' };

/**
 * One attempt of a job: its steps in order, each seeing the inputs (as narrowed by earlier
 * steps) and the outputs before it. A step that throws, times out or kills its worker fails
 * the attempt with DF_ERR_STEP_FAILED naming plugin, step and job, the original as its cause.
 */
export async function runJob(job: JobRecord, pipeline: LoadedPipeline, cancel: AbortSignal, deps: RunJobDeps): Promise<JobOutcome> {
  let inputs: StepInput[] = (await deps.queue.stepInputs(job.inputs)).map((i) => ({ ...i, path: deps.objectPath(i.path) }));
  const previousOutputs: StepOutput[] = [];
  const jobDir = path.join(deps.jobsDir, job.id);
  const outputDir = path.join(jobDir, 'outputs');
  const steps = pipeline.steps;
  const database = inputs.find((i) => i.database)?.database ?? deps.services.defaultDatabase;
  for (const step of steps) {
    if (cancel.aborted) return { status: 'cancelled' };
    const scratchDir = path.join(jobDir, 'scratch', `${job.attempts}-${step.index}-${step.id}`);
    // A previous attempt's leftovers must not leak into this one.
    if (fs.existsSync(scratchDir)) fs.rmSync(scratchDir, { recursive: true, force: true });
    if (step.registered.plugin.runsIn === 'worker') {
      fs.mkdirSync(scratchDir, { recursive: true });
      fs.mkdirSync(outputDir, { recursive: true });
    }
    const seed: StepContextSeed = {
      job: {
        id: job.id,
        pipeline: job.pipeline,
        pipelineVersion: pipeline.hash,
        database,
        attempt: job.attempts,
        trigger: { on: job.triggerOn, uid: job.triggerUid, ...job.contributors },
      },
      node: { name: deps.node },
      step: { id: step.id, index: step.index },
      inputs,
      previousOutputs: [...previousOutputs],
      scratchDir,
      outputDir,
    };
    const progress = (fraction: number, message?: string) =>
      deps.onProgress(job, (step.index + fraction) / steps.length, message ?? `${step.id}`);
    // Worker steps take long enough to show as running; quick main-thread steps are recorded
    // once, when they end (a job of the default pipeline costs a few writes, not a dozen).
    const startedAt = new Date().toISOString();
    if (step.registered.plugin.runsIn === 'worker') {
      await deps.queue.startStep(job.id, job.attempts, step.index, step.id, step.pluginRef);
      progress(0);
    }
    const started = performance.now();
    const record = { id: step.id, plugin: step.pluginRef, startedAt };
    let effects: StepEffects = { log: [], outputs: [] };
    try {
      effects = await runStep(step, seed, cancel, progress, deps);
      for (const output of effects.outputs) {
        if (output.kind === 'instance' && output.path) Object.assign(output, await deps.storeEmittedInstance(output.path, job));
      }
    } catch (err) {
      const cancelled = cancel.aborted;
      const error = cancelled ? undefined : stepError(err, step, job);
      await deps.queue.finishStep(job.id, job.attempts, step.index, {
        ...record,
        status: 'failed',
        durationMs: performance.now() - started,
        log: effects.log.length > 0 ? effects.log : ((err as { stepLog?: StepEffects['log'] }).stepLog ?? []),
        outputs: effects.outputs,
        error: cancelled ? 'cancelled' : error!.message,
      });
      return cancelled ? { status: 'cancelled' } : { status: 'failed', error: error! };
    }
    await deps.queue.finishStep(job.id, job.attempts, step.index, {
      ...record,
      status: 'succeeded',
      durationMs: performance.now() - started,
      log: effects.log,
      outputs: effects.outputs,
    });
    previousOutputs.push(...effects.outputs);
    if (effects.keep) {
      const keep = new Set(effects.keep);
      inputs = inputs.filter((i) => keep.has(i.arrivalId));
    }
    if (effects.stopReason !== undefined) {
      removeScratch(jobDir, previousOutputs);
      return { status: 'succeeded', stopReason: effects.stopReason };
    }
  }
  removeScratch(jobDir, previousOutputs);
  return { status: 'succeeded' };
}

/**
 * A succeeded job's scratch space goes (a failed one's stays, to look at), unless an output
 * lives in it; a job directory left empty goes too.
 */
function removeScratch(jobDir: string, outputs: StepOutput[]): void {
  const scratch = path.join(jobDir, 'scratch');
  if (outputs.some((o) => o.path?.startsWith(scratch + path.sep))) return;
  fs.rmSync(scratch, { recursive: true, force: true });
  try {
    fs.rmdirSync(jobDir);
  } catch {
    // not empty (outputs) or never made: either way it stays as it is
  }
}

async function runStep(
  step: ResolvedStep,
  seed: StepContextSeed,
  cancel: AbortSignal,
  progress: (fraction: number, message?: string) => void,
  deps: RunJobDeps,
): Promise<StepEffects> {
  // A timer of our own, cleared when the step ends. AbortSignal.timeout() keeps its signal, the
  // listeners on it and so the step's whole context alive until it fires (600 s by default):
  // under load (bench/load.ts, ~200 jobs/s) the heap grew by ~8 KB per job, 400 MB in 3 minutes.
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), step.timeoutSeconds * 1000);
  try {
    return await runStepUntil(step, seed, AbortSignal.any([cancel, timeout.signal]), timeout.signal, progress, deps);
  } finally {
    clearTimeout(timer);
  }
}

async function runStepUntil(
  step: ResolvedStep,
  seed: StepContextSeed,
  signal: AbortSignal,
  timeout: AbortSignal,
  progress: (fraction: number, message?: string) => void,
  deps: RunJobDeps,
): Promise<StepEffects> {
  const { plugin, moduleUrl } = step.registered;
  if (plugin.runsIn === 'main') {
    const runTask = (call: { moduleUrl: string; exportName: string; arg: unknown }, transferList: Transferable[]) =>
      deps.pool.runTask(call, { signal, transferList });
    const { ctx, effects } = createStepContext(seed, signal, progress, undefined, deps.services, runTask);
    // A main-thread step cannot be killed; it is abandoned at its timeout (its signal tells it
    // to stop) and the job moves on.
    let fail = () => {};
    const aborted = new Promise<never>((_, reject) => {
      fail = () => reject(timeout.aborted ? timeoutError(step) : new Error('cancelled'));
      if (signal.aborted) fail();
      else signal.addEventListener('abort', fail, { once: true });
    });
    try {
      await Promise.race([Promise.resolve().then(() => plugin.run(ctx, step.options)), aborted]);
    } catch (err) {
      Object.assign(err as object, { stepLog: effects.log });
      throw err;
    } finally {
      // Node keeps a signal from AbortSignal.any() that has listeners in a global set until it
      // aborts: a listener left behind held each finished step's context for ever (~8 KB a job).
      signal.removeEventListener('abort', fail);
    }
    return effects;
  }
  const { port1, port2 } = new MessageChannel();
  const log: StepEffects['log'] = [];
  port1.on('message', (m: { type: string; fraction?: number; message?: string; line?: StepEffects['log'][number] }) => {
    if (m.type === 'progress') progress(m.fraction ?? 0, m.message);
    else if (m.type === 'log' && m.line && log.length <= 2000) log.push(m.line);
  });
  try {
    const result = await deps.pool.run(
      { moduleUrl, pluginName: plugin.name, pluginVersion: plugin.version, options: step.options, seed, port: port2 },
      { signal, transferList: [port2] },
    );
    if (result.failure) {
      const { message, stack, code, log: fullLog } = result.failure;
      throw Object.assign(new Error(message), { stack, code, stepLog: fullLog });
    }
    return { ...result, log };
  } catch (err) {
    const e = timeout.aborted ? timeoutError(step) : err;
    if (!(e as { stepLog?: unknown }).stepLog) Object.assign(e as object, { stepLog: log });
    throw e;
  } finally {
    port1.close();
  }
}

function timeoutError(step: ResolvedStep): DfError {
  return dfError('DF_ERR_STEP_TIMEOUT', `step "${step.id}" exceeded its timeout of ${step.timeoutSeconds} s`);
}

function stepError(err: unknown, step: ResolvedStep, job: JobRecord): DfError {
  if (isDfError(err, 'DF_ERR_STEP_FAILED')) return err;
  const message = (err as Error)?.message ?? String(err);
  return dfError(
    'DF_ERR_STEP_FAILED',
    `step "${step.id}" (plugin ${step.registered.plugin.name}@${step.registered.plugin.version}) of job ${job.id} failed: ${message}`,
    {
      cause: err,
      details: { plugin: step.registered.plugin.name, step: step.id, job: job.id, causeCode: isDfError(err) ? err.code : undefined },
    },
  );
}
