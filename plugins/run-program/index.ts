import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { dfError } from '../../core/errors.ts';
import { definePlugin, type StepContext, type StepInput } from '../../core/plugin.ts';

const MAX_OUTPUT_BYTES = 1 << 20;
const KILL_GRACE_MS = 5000;

/** The documented placeholders; each is also passed as environment variable DF_<NAME>. */
export const placeholderNames = [
  'file',
  'folder',
  'callingAeTitle',
  'calledAeTitle',
  'peerHost',
  'studyInstanceUid',
  'seriesInstanceUid',
  'sopInstanceUid',
  'sopClassUid',
  'patientId',
  'modality',
  'studyDescription',
  'seriesDescription',
  'jobId',
  'pipeline',
  'pipelineVersion',
  'database',
  'nodeName',
  'outputDir',
  'scratchDir',
] as const;
type PlaceholderName = (typeof placeholderNames)[number];

/** Paths dicomflow chose: the only placeholders kept as they are inside a longer argument. */
const pathPlaceholders: ReadonlySet<string> = new Set<PlaceholderName>(['file', 'folder', 'outputDir', 'scratchDir']);

/**
 * A value from the data or the peer as one path segment that stays in its directory and cannot
 * pass for an option: '/', NUL and control characters become '_', every '..' becomes '__', and
 * a leading '-' becomes '_'. ('MR/T1 ..' → 'MR_T1 __', '../../etc' → '______etc', '-rf' → '_rf'.)
 */
export function safePathSegment(value: string): string {
  const segment = value.replace(/[\u0000-\u001f\u007f-\u009f/]/g, '_').replace(/\.{2,}/g, (dots) => '_'.repeat(dots.length));
  if (segment === '.') return '_';
  return segment.startsWith('-') ? `_${segment.slice(1)}` : segment;
}

/** NUL cannot be passed in an argument or the environment at all. */
const withoutNul = (value: string) => value.replaceAll('\0', '_');

/** callingAeTitle → DF_CALLING_AE_TITLE */
export const envName = (name: string) => `DF_${name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`;

/**
 * Runs an external program, like DCMTK storescp's --exec-on-reception / --exec-on-eostudy, but
 * safely: execFile with an argument array (never a shell), so a DICOM value full of shell
 * metacharacters reaches the program as one inert argument.
 */
export default definePlugin({
  name: 'run-program',
  version: '1.0.0',
  description: 'Run an external program per instance or once per job, with placeholders in its arguments and DF_* environment variables.',
  runsIn: 'main',
  consumes: ['instances'],
  produces: ['files'],
  defaultTimeoutSeconds: 300,
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['program'],
    properties: {
      program: { type: 'string', minLength: 1, description: 'Executable: an absolute path, or a name looked up on PATH.' },
      args: {
        type: 'array',
        items: { type: 'string' },
        default: [],
        description:
          'Arguments; {file}, {folder}, {callingAeTitle}, … are replaced; an argument that is exactly "{files}" becomes one argument per input file. Inside a longer argument (a path), a value from the data becomes one safe path segment; put "--" before values passed as whole arguments.',
      },
      env: { type: 'object', additionalProperties: { type: 'string' }, default: {}, description: 'Extra environment variables.' },
      forEach: {
        enum: ['instance', 'job'],
        default: 'job',
        description: 'instance: once per input instance (like --exec-on-reception); job: once for all inputs (like --exec-on-eostudy).',
      },
      cwd: { type: 'string', description: 'Working directory; default: the step’s scratch directory.' },
      collectOutputs: {
        type: 'boolean',
        default: false,
        description: 'Record the files the program leaves in {outputDir} as step outputs.',
      },
    },
  },
  async run(ctx, options) {
    const runs: StepInput[][] = options.forEach === 'instance' ? ctx.inputs.map((i) => [i]) : [ctx.inputs];
    for (const [n, inputs] of runs.entries()) {
      if (ctx.signal.aborted) return;
      const folder = linkInputs(ctx, inputs, n);
      const values = placeholderValues(ctx, inputs, folder);
      const args = options.args.flatMap((arg) => (arg === '{files}' ? inputs.map((i) => i.path) : [fill(arg, values)]));
      const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
      for (const name of placeholderNames) env[envName(name)] = withoutNul(values[name]);
      env.DF_FILES = inputs.map((i) => i.path).join('\n');
      ctx.log.info(`running ${options.program}`, { args });
      await runProgram(ctx, options.program, args, env, options.cwd ?? ctx.scratchDir);
      ctx.progress((n + 1) / runs.length);
    }
    if (options.collectOutputs) {
      for (const f of fs.readdirSync(ctx.outputDir)) ctx.emitFile(path.join(ctx.outputDir, f));
    }
  },
});

/** {folder}: the inputs as numbered links in the scratch space (names never come from UIDs). */
function linkInputs(ctx: StepContext, inputs: StepInput[], run: number): string {
  const folder = path.join(ctx.scratchDir, `inputs-${run}`);
  fs.mkdirSync(folder, { recursive: true });
  inputs.forEach((input, i) => fs.symlinkSync(input.path, path.join(folder, `${String(i + 1).padStart(5, '0')}.dcm`)));
  return folder;
}

function placeholderValues(ctx: StepContext, inputs: StepInput[], folder: string): Record<PlaceholderName, string> {
  const first = inputs[0];
  const common = (pick: (i: StepInput) => string | undefined) => {
    const values = [...new Set(inputs.map(pick).filter((v): v is string => v !== undefined && v !== ''))];
    return values.join('\\');
  };
  return {
    file: first?.path ?? '',
    folder,
    callingAeTitle: common((i) => i.callingAeTitle),
    calledAeTitle: common((i) => i.calledAeTitle),
    peerHost: common((i) => i.peerAddress),
    studyInstanceUid: common((i) => i.studyInstanceUid),
    seriesInstanceUid: common((i) => i.seriesInstanceUid),
    sopInstanceUid: inputs.length === 1 ? first.sopInstanceUid : '',
    sopClassUid: common((i) => i.sopClassUid),
    patientId: common((i) => i.attributes.PatientID),
    modality: common((i) => i.attributes.Modality),
    studyDescription: common((i) => i.attributes.StudyDescription),
    seriesDescription: common((i) => i.attributes.SeriesDescription),
    jobId: ctx.job.id,
    pipeline: ctx.job.pipeline,
    pipelineVersion: ctx.job.pipelineVersion,
    database: ctx.job.database,
    nodeName: ctx.node.name,
    outputDir: ctx.outputDir,
    scratchDir: ctx.scratchDir,
  };
}

/**
 * An argument that is exactly one placeholder gets the value as it is (a program takes values
 * after '--', so one starting with '-' is not read as an option). Inside a longer argument, such
 * as '{outputDir}/{patientId}/{seriesDescription}.nii', a value from the data is made one safe
 * path segment: a hostile Patient ID cannot lead the path out of the directory.
 */
function fill(arg: string, values: Record<PlaceholderName, string>): string {
  const whole = /^\{([A-Za-z]+)\}$/.exec(arg);
  if (whole && whole[1] in values) return withoutNul(values[whole[1] as PlaceholderName]);
  return arg.replace(/\{([A-Za-z]+)\}/g, (placeholder, name: string) => {
    if (!(name in values)) return placeholder;
    const value = values[name as PlaceholderName];
    return pathPlaceholders.has(name) ? value : safePathSegment(value);
  });
}

function runProgram(ctx: StepContext, program: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      args,
      { env, cwd, maxBuffer: MAX_OUTPUT_BYTES, killSignal: 'SIGTERM', windowsHide: true },
      (err, stdout, stderr) => {
        ctx.signal.removeEventListener('abort', onAbort);
        clearTimeout(killTimer);
        if (stdout) ctx.log.info('stdout', { text: stdout.slice(-64 * 1024) });
        if (stderr) ctx.log.warn('stderr', { text: stderr.slice(-64 * 1024) });
        const code = child.exitCode;
        ctx.log.info('program ended', { exitCode: code, signal: child.signalCode });
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException & { code?: unknown };
        const why =
          typeof e.code === 'string'
            ? `could not be started (${e.code})`
            : child.signalCode
              ? `was killed by ${child.signalCode}`
              : `exited with code ${code}`;
        const tail = stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500)}` : '';
        reject(
          dfError('DF_ERR_PROGRAM_FAILED', `${program} ${why}${tail}`, {
            cause: err,
            details: { exitCode: code, signal: child.signalCode },
          }),
        );
      },
    );
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}
