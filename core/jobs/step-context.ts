import fs from 'node:fs';
import type { JobInfo, NodeInfo, StepContext, StepInput, StepLogger, StepOutput, TaskRunner } from '../plugin.ts';
import type { EngineServices } from './services.ts';
import type { StepLogLine } from '../store/job-queue.ts';

// A step's log is kept with the job; cap it so a chatty step cannot bloat the database.
const MAX_LOG_LINES = 2000;
const MAX_LINE_CHARS = 4000;

/** What a step did, besides succeeding or throwing: collected by its context. */
export interface StepEffects {
  log: StepLogLine[];
  outputs: StepOutput[];
  keep?: string[];
  stopReason?: string;
}

export interface StepContextSeed {
  job: JobInfo;
  node: NodeInfo;
  step: { id: string; index: number };
  inputs: StepInput[];
  previousOutputs: StepOutput[];
  scratchDir: string;
  outputDir: string;
}

/**
 * Builds the context a plugin's run() receives. Used on the main thread and, with the same
 * code, inside workers (where progress and log lines are also posted to the main thread).
 */
export function createStepContext(
  seed: StepContextSeed,
  signal: AbortSignal,
  onProgress: (fraction: number, message?: string) => void,
  onLog?: (line: StepLogLine) => void,
  services?: EngineServices,
  runTask: TaskRunner = runTaskInline,
): { ctx: StepContext; effects: StepEffects } {
  const effects: StepEffects = { log: [], outputs: [] };
  const write = (level: StepLogLine['level']) => (message: string, data?: Record<string, unknown>) => {
    const line: StepLogLine = {
      at: new Date().toISOString(),
      level,
      message: String(message).slice(0, MAX_LINE_CHARS),
      ...(data ? { data } : {}),
    };
    if (effects.log.length < MAX_LOG_LINES) effects.log.push(line);
    else if (effects.log.length === MAX_LOG_LINES)
      effects.log.push({ at: line.at, level: 'warn', message: `log truncated after ${MAX_LOG_LINES} lines` });
    onLog?.(line);
  };
  const log: StepLogger = { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
  // Most steps never touch the disk: their directories are made on first use.
  const lazyDir = (dir: string) => () => {
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };
  const scratchDir = lazyDir(seed.scratchDir);
  const outputDir = lazyDir(seed.outputDir);
  const ctx: StepContext = {
    job: seed.job,
    node: seed.node,
    step: seed.step,
    inputs: seed.inputs,
    previousOutputs: seed.previousOutputs,
    get scratchDir() {
      return scratchDir();
    },
    get outputDir() {
      return outputDir();
    },
    signal,
    progress: (fraction, message) => onProgress(Math.min(1, Math.max(0, Number(fraction) || 0)), message),
    log,
    emitFile: (path, description) => effects.outputs.push({ kind: 'file', path, description }),
    emitInstance: (path, description) => effects.outputs.push({ kind: 'instance', path, description }),
    emitTable: (name, rows, description) => effects.outputs.push({ kind: 'table', name, rows, description }),
    keepInputs: (arrivalIds) => {
      effects.keep = [...arrivalIds];
    },
    stopPipeline: (reason) => {
      effects.stopReason = reason;
    },
    services,
    runTask: async <R, A>(moduleUrl: string, exportName: string, arg: A, options?: { transferList?: Transferable[] }) => {
      signal.throwIfAborted();
      return (await runTask({ moduleUrl, exportName, arg }, options?.transferList ?? [])) as R;
    },
  };
  return { ctx, effects };
}

/** Calls a task function on this thread: in workers, and in tests without a pool. */
export async function runTaskInline(call: { moduleUrl: string; exportName: string; arg: unknown }): Promise<unknown> {
  const mod = (await import(call.moduleUrl)) as Record<string, unknown>;
  const fn = mod[call.exportName];
  if (typeof fn !== 'function') throw new Error(`${call.moduleUrl} has no exported function "${call.exportName}"`);
  return fn(call.arg);
}
