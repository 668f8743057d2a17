import { types } from 'node:util';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createStepContext, runTaskInline, type StepContextSeed, type StepEffects } from '../core/jobs/step-context.ts';
import type { PluginDefinition } from '../core/plugin.ts';

export interface WorkerTask {
  moduleUrl: string;
  pluginName: string;
  pluginVersion: string;
  options: Record<string, unknown>;
  seed: StepContextSeed;
  /** Progress and log lines go back to the main thread as they happen. */
  port: MessagePort;
}

export type WorkerMessage = { type: 'progress'; fraction: number; message?: string } | { type: 'log'; line: StepEffects['log'][number] };

const modules = new Map<string, Promise<PluginDefinition<any>>>();

function loadPlugin(url: string, name: string, version: string): Promise<PluginDefinition<any>> {
  const key = `${url}#${name}@${version}`;
  let p = modules.get(key);
  if (!p) {
    p = import(url).then((mod) => {
      const exported = mod.default ?? mod.plugin;
      const found = (Array.isArray(exported) ? exported : [exported]).find(
        (x: PluginDefinition) => x?.name === name && x.version === version,
      );
      if (!found) throw new Error(`${url} does not export plugin ${name}@${version}`);
      return found;
    });
    modules.set(key, p);
  }
  return p;
}

/**
 * The piscina worker: runs one step of a job. A timeout or cancel terminates the whole thread
 * (piscina replaces it), so the signal here never fires; the step simply stops existing.
 */
export type WorkerResult = Omit<StepEffects, 'log'> & {
  /** The step threw: its error, and the whole log (port messages may not have arrived yet). */
  failure?: { message: string; stack?: string; code?: string; log: StepEffects['log'] };
};

export default async function runStep(task: WorkerTask): Promise<WorkerResult> {
  const { ctx, effects } = createStepContext(
    task.seed,
    new AbortController().signal,
    (fraction, message) => task.port.postMessage({ type: 'progress', fraction, message } satisfies WorkerMessage),
    (line) => task.port.postMessage({ type: 'log', line } satisfies WorkerMessage),
  );
  try {
    const plugin = await loadPlugin(task.moduleUrl, task.pluginName, task.pluginVersion);
    await plugin.run(ctx, task.options);
  } catch (err) {
    const e = err as Error & { code?: string };
    return { outputs: effects.outputs, failure: { message: e?.message ?? String(err), stack: e?.stack, code: e?.code, log: effects.log } };
  } finally {
    task.port.close();
  }
  // The log already travelled line by line; do not send it twice.
  return { outputs: effects.outputs, keep: effects.keep, stopReason: effects.stopReason };
}

/**
 * One ctx.runTask call of a main-thread step. The typed arrays of the result are moved, not
 * copied, back to the main thread (a frame of 64 MB: about 1 ms instead of about 100).
 */
export async function runTask(call: { moduleUrl: string; exportName: string; arg: unknown }): Promise<unknown> {
  const result = await runTaskInline(call);
  const buffers = new Set<ArrayBuffer>();
  const collect = (value: unknown, depth: number) => {
    // Only views that own their whole buffer: a small Node Buffer shares a pool slab with others.
    if (types.isArrayBufferView(value)) {
      if (value.buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength)
        buffers.add(value.buffer);
    } else if (value instanceof ArrayBuffer) buffers.add(value);
    else if (depth > 0 && value && typeof value === 'object') for (const v of Object.values(value)) collect(v, depth - 1);
  };
  collect(result, 2);
  if (buffers.size === 0) return result;
  return Piscina.move({ [Piscina.transferableSymbol]: [...buffers], [Piscina.valueSymbol]: result } as any);
}
