// A worker process of the step pool (engine.isolation "process"): runs the steps and ctx.runTask
// calls the parent sends over IPC, one at a time. Progress and log lines go back as they happen.
import { flushCompileCache } from 'node:module';
import { runTaskInline } from '../core/jobs/step-context.ts';
import runStep, { type WorkerTask } from './step-worker.ts';

export type ProcessRequest =
  | { id: number; kind: 'step'; task: Omit<WorkerTask, 'port'> }
  | { id: number; kind: 'task'; call: { moduleUrl: string; exportName: string; arg: unknown } };

export type ProcessReply =
  | { id: number; type: 'progress'; fraction: number; message?: string }
  | { id: number; type: 'log'; line: unknown }
  | { id: number; type: 'result'; result: unknown }
  | { id: number; type: 'error'; message: string; stack?: string; code?: string };

const send = (reply: ProcessReply) => process.send!(reply);

process.on('message', async (request: ProcessRequest) => {
  try {
    if (request.kind === 'step') {
      // What runStep posts to its MessagePort in a thread goes over IPC here.
      const port = { postMessage: (m: object) => send({ id: request.id, ...m } as ProcessReply), close() {} };
      const result = await runStep({ ...request.task, port } as unknown as WorkerTask);
      send({ id: request.id, type: 'result', result });
    } else {
      send({ id: request.id, type: 'result', result: await runTaskInline(request.call) });
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    send({ id: request.id, type: 'error', message: e?.message ?? String(err), stack: e?.stack, code: e?.code });
  }
  // Node writes its compile cache (NODE_COMPILE_CACHE, process-pool.ts) at a normal exit; an idle
  // worker is killed instead, so what the request loaded (a plugin's modules) is written now.
  setImmediate(flushCompileCache);
});
