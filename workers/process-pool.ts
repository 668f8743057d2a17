import { fork, type ChildProcess } from 'node:child_process';
import type { MessagePort } from 'node:worker_threads';
import type { ProcessReply, ProcessRequest } from './step-process.ts';

/**
 * Worker processes for the step pool (engine.isolation "process", the default). A thread that
 * exhausts its heap can abort the whole server process, whatever its resourceLimits say (Node
 * issue #47224; seen here about once in eight runs of a step that fills its heap): a process
 * of its own cannot. A step that throws, exits, crashes or runs out of memory fails its task; a
 * timeout or cancel kills the process. Idle processes stay for a minute, then exit.
 *
 * Typed arrays travel by copy (IPC with structured clone), not by transfer as between threads.
 *
 * With `compileCacheDir`, workers keep Node's compile cache there (NODE_COMPILE_CACHE: the
 * stripped TypeScript and V8's bytecode of every module they load; step-process.ts flushes it
 * after each request). A fresh worker then loads the step and its plugin in about half the time
 * (126 against 253–308 ms for motion-correction here), which every job pays that starts after
 * the pool has gone idle.
 */
export class ProcessPool {
  private readonly idle: Worker[] = [];
  private readonly o: { maxOldGenerationSizeMb?: number; idleTimeoutMs: number; compileCacheDir?: string };
  private closed = false;
  private nextId = 1;

  constructor(o: { maxOldGenerationSizeMb?: number; idleTimeoutMs?: number; compileCacheDir?: string }) {
    this.o = { idleTimeoutMs: 60_000, ...o };
  }

  /** A step (the port gets its progress and log lines, as a worker thread's port would). */
  runStep(task: Record<string, unknown> & { port: MessagePort }, signal: AbortSignal): Promise<unknown> {
    const { port, ...rest } = task;
    return this.dispatch({ id: this.nextId++, kind: 'step', task: rest as never }, signal, (reply) => port.postMessage(reply)).finally(() =>
      port.close(),
    );
  }

  runTask(call: { moduleUrl: string; exportName: string; arg: unknown }, signal: AbortSignal): Promise<unknown> {
    return this.dispatch({ id: this.nextId++, kind: 'task', call }, signal);
  }

  async destroy(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((w) => w.kill()));
  }

  private async dispatch(request: ProcessRequest, signal: AbortSignal, onNews?: (reply: ProcessReply) => void): Promise<unknown> {
    signal.throwIfAborted();
    const worker = this.idle.pop() ?? new Worker(this.o.maxOldGenerationSizeMb, this.o.compileCacheDir);
    worker.busy();
    let healthy = false;
    try {
      const result = await worker.run(request, signal, onNews);
      healthy = true;
      return result;
    } finally {
      if (healthy && !this.closed) {
        worker.idleFor(this.o.idleTimeoutMs, () => {
          const i = this.idle.indexOf(worker);
          if (i >= 0) this.idle.splice(i, 1);
        });
        this.idle.push(worker);
      } else {
        void worker.kill();
      }
    }
  }
}

// The last of a worker's stderr, for the error when it dies (V8's "Reached heap limit").
const STDERR_KEPT = 4000;

class Worker {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private stderr = '';
  private idleTimer: NodeJS.Timeout | undefined;
  private current: { id: number; onReply(reply: ProcessReply): void } | undefined;
  private readonly maxOldGenerationSizeMb: number | undefined;

  constructor(maxOldGenerationSizeMb: number | undefined, compileCacheDir: string | undefined) {
    this.maxOldGenerationSizeMb = maxOldGenerationSizeMb;
    this.child = fork(new URL('./step-process.ts', import.meta.url), {
      // The environment variable, not a call in the child: the child's static imports load first.
      env: compileCacheDir === undefined ? process.env : { ...process.env, NODE_COMPILE_CACHE: compileCacheDir },
      execArgv: maxOldGenerationSizeMb ? [`--max-old-space-size=${maxOldGenerationSizeMb}`] : [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      process.stderr.write(text);
      this.stderr = (this.stderr + text).slice(-STDERR_KEPT);
    });
    this.child.on('message', (reply: ProcessReply) => {
      if (reply.id === this.current?.id) this.current.onReply(reply);
    });
    // An IPC error (the child gone mid-send) shows as its exit below.
    this.child.on('error', () => {});
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  busy(): void {
    clearTimeout(this.idleTimer);
  }

  idleFor(ms: number, onExpired: () => void): void {
    this.idleTimer = setTimeout(() => {
      onExpired();
      void this.kill();
    }, ms);
    this.idleTimer.unref();
  }

  run(request: ProcessRequest, signal: AbortSignal, onNews?: (reply: ProcessReply) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.current = undefined;
        signal.removeEventListener('abort', onAbort);
        this.child.off('exit', onExit);
      };
      const onAbort = () => {
        done();
        void this.kill();
        reject(signal.reason);
      };
      const onExit = (code: number | null, sig: string | null) => {
        done();
        const outOfMemory = /heap limit|out of memory/i.test(this.stderr);
        const how = outOfMemory
          ? `ran out of memory (engine.workerMaxMemoryMb ${this.maxOldGenerationSizeMb ?? 'default'})`
          : `exited (${sig ? `signal ${sig}` : `code ${code}`})`;
        reject(
          Object.assign(new Error(`the step's worker process ${how}`), {
            code: outOfMemory ? 'ERR_WORKER_OUT_OF_MEMORY' : 'ERR_WORKER_EXITED',
          }),
        );
      };
      this.current = {
        id: request.id,
        onReply: (reply) => {
          if (reply.type === 'result') {
            done();
            resolve(reply.result);
          } else if (reply.type === 'error') {
            done();
            reject(Object.assign(new Error(reply.message), { stack: reply.stack, code: reply.code }));
          } else {
            onNews?.(reply);
          }
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.child.once('exit', onExit);
      this.child.send(request, (err) => {
        if (err && this.current?.id === request.id) onExit(this.child.exitCode, this.child.signalCode);
      });
    });
  }

  async kill(): Promise<void> {
    clearTimeout(this.idleTimer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
