import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  buildDicomdir,
  emptyFileSet,
  fileIdPath,
  parseFileSet,
  placeInstances,
  type FileSet,
  type FileSetEntry,
  type FileSetInstance,
} from '../../core/dicom/dicomdir.ts';
import { readFileMeta } from '../../core/dicom/part10.ts';
import { definePlugin, type StepContext, type StepInput } from '../../core/plugin.ts';
import { acquireLock } from './lock.ts';

/**
 * Copies each instance, byte for byte, into a DICOM file-set (PS3.10 8) under a numbered File ID
 * and rewrites the file-set's DICOMDIR. The file-set's state is an index file in its root; every
 * update regenerates the DICOMDIR from it, so a crash between two writes heals on the next run.
 */
export default definePlugin({
  name: 'dicomdir',
  version: '1.0.0',
  description: 'Copy the instances into a DICOM Part 10 file-set (DICOM/P…/S…/E…/I…) and keep its DICOMDIR current.',
  runsIn: 'main',
  consumes: ['instances'],
  produces: ['files'],
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['root'],
    properties: {
      root: {
        type: 'string',
        minLength: 1,
        description:
          'The file-set root: DICOMDIR and the DICOM folder go here. A relative path resolves against the server’s working directory.',
      },
      fileSetId: {
        type: 'string',
        pattern: '^[A-Z0-9_]{0,16}$',
        default: 'DICOMFLOW',
        description: 'File-set ID (0004,1130): up to 16 of A–Z, 0–9 and _ (PS3.10 8.2); it becomes the CD’s volume label (PS3.12 F.1.1).',
      },
    },
  },
  async run(ctx, options) {
    const root = path.resolve(options.root);
    const result = await fileInstances(root, options.fileSetId, ctx);
    ctx.log.info(`filed ${result.added} new instance(s), ${result.present} already in the file-set`, { root, ...result });
    ctx.emitFile(path.join(root, DICOMDIR), `DICOMDIR of the file-set in ${root}`);
  },
});

const DICOMDIR = 'DICOMDIR';
// The step's own files in the root start with a dot: leave them out when burning the file-set.
const INDEX = '.dicomflow-fileset.json';
const TMP = '.dicomflow-tmp';
// Enough for any File Meta Information group (PS3.10 7.1) of a real object.
const META_HEAD_BYTES = 64 * 1024;

export interface FilingResult {
  added: number;
  present: number;
  /** Instances in the index whose file was missing and has been copied again. */
  repaired: number;
}

// ---------------------------------------------------------------------------------------------
// One writer per root. Jobs that arrive while a root is being written wait and are then written
// together (group commit): one DICOMDIR rewrite for all of them, not one each.

interface Request {
  ctx: StepContext;
  fileSetId: string;
  resolve(result: FilingResult): void;
  reject(err: unknown): void;
}

const queues = new Map<string, { pending: Request[] }>();

async function fileInstances(root: string, fileSetId: string, ctx: StepContext): Promise<FilingResult> {
  await fsp.mkdir(root, { recursive: true });
  // One key per directory, however the pipeline spelled it.
  const key = await fsp.realpath(root);
  return new Promise((resolve, reject) => {
    const request = { ctx, fileSetId, resolve, reject };
    const queue = queues.get(key);
    if (queue) {
      queue.pending.push(request);
      return;
    }
    const fresh = { pending: [request] };
    queues.set(key, fresh);
    void drain(key, fresh);
  });
}

async function drain(root: string, queue: { pending: Request[] }): Promise<void> {
  try {
    while (queue.pending.length > 0) await commit(root, queue.pending.splice(0));
  } finally {
    queues.delete(root);
  }
}

/**
 * Files a batch of requests under the root's lock and settles every request once the lock is
 * released (a job that finished no longer holds the file-set). Never throws.
 */
async function commit(root: string, batch: Request[]): Promise<void> {
  const outcomes = new Map<Request, { result: FilingResult } | { error: unknown }>();
  const open = () => batch.filter((r) => !outcomes.has(r));
  const dropAborted = () => {
    for (const r of open()) if (r.ctx.signal.aborted) outcomes.set(r, { error: r.ctx.signal.reason });
    return open().length > 0;
  };
  let release: (() => Promise<void>) | undefined;
  try {
    release = await acquireLock(root, dropAborted, (message) => open().forEach((r) => r.ctx.log.warn(message)), batch[0]?.ctx.node.name);
    if (release) {
      let fileSet = await loadFileSet(root);
      const tmpDir = path.join(root, TMP);
      // Under the lock, anything in the temporary folder is a crashed writer's leftover.
      await fsp.rm(tmpDir, { recursive: true, force: true });
      await fsp.mkdir(tmpDir);
      const done: { request: Request; result: FilingResult }[] = [];
      // Folders that gained or changed entries, synced once for the whole batch (each fsync
      // costs milliseconds: per request they made filing the slowest step under load).
      const touchedDirs = new Set<string>();
      for (const request of open()) {
        if (request.ctx.signal.aborted) {
          outcomes.set(request, { error: request.ctx.signal.reason });
          continue;
        }
        try {
          const filed = await fileRequest(root, fileSet, request.ctx, touchedDirs);
          fileSet = filed.fileSet;
          done.push({ request, result: filed.result });
        } catch (err) {
          // This job's instances stay out of the index; files it copied are overwritten by the
          // next instance given the same File ID.
          outcomes.set(request, { error: err });
        }
      }
      await fsp.rm(tmpDir, { recursive: true, force: true });
      if (done.length > 0) {
        // The copies' directory entries reach the disk before the index and DICOMDIR that name them.
        await Promise.all([...touchedDirs].map(fsyncDir));
        await fsyncDir(root);
        await writeFileSet(root, fileSet, done.at(-1)!.request.fileSetId);
      }
      for (const { request, result } of done) outcomes.set(request, { result });
    }
  } catch (err) {
    for (const r of open()) outcomes.set(r, { error: err });
  } finally {
    await release?.().catch((err: unknown) => {
      for (const r of batch) outcomes.set(r, { error: err });
    });
  }
  for (const r of batch) {
    const outcome = outcomes.get(r)!;
    if ('result' in outcome) r.resolve(outcome.result);
    else r.reject(outcome.error);
  }
}

// ---------------------------------------------------------------------------------------------
// Filing one job's instances

async function fileRequest(
  root: string,
  fileSet: FileSet,
  ctx: StepContext,
  touchedDirs: Set<string>,
): Promise<{ fileSet: FileSet; result: FilingResult }> {
  const instances: FileSetInstance[] = [];
  for (const input of ctx.inputs) {
    // The File Meta Information says what the file holds; the arrival's attributes give the keys.
    let meta: ReturnType<typeof readFileMeta>;
    try {
      meta = readFileMeta(await readHead(input.path));
    } catch (err) {
      throw new Error(`cannot file ${input.sopInstanceUid} (${input.path}): ${(err as Error).message}`, { cause: err });
    }
    instances.push({
      sopClassUid: meta.sopClassUid,
      sopInstanceUid: meta.sopInstanceUid,
      transferSyntaxUid: meta.transferSyntaxUid,
      studyInstanceUid: input.studyInstanceUid ?? input.attributes.StudyInstanceUID ?? '',
      seriesInstanceUid: input.seriesInstanceUid ?? input.attributes.SeriesInstanceUID ?? '',
      attributes: input.attributes,
      receivedAt: input.receivedAt,
    });
  }
  const placed = placeInstances(fileSet, instances);
  const result: FilingResult = { added: 0, present: 0, repaired: 0 };
  for (const [i, { entry, added, notes }] of placed.placements.entries()) {
    const input = ctx.inputs[i];
    for (const note of notes) ctx.log.warn(`${entry.sopInstanceUid}: ${note}`);
    const target = fileIdPath(root, entry.fileId);
    let copied = true;
    if (added) {
      Object.assign(entry, await copyInto(root, input, target, ctx.signal));
      result.added++;
    } else if (!(await exists(target))) {
      ctx.log.warn(`${entry.sopInstanceUid}: ${entry.fileId.join('\\')} was missing; copied again`);
      const again = await copyInto(root, input, target, ctx.signal);
      if (entry.sha256 !== undefined && entry.sha256 !== again.sha256)
        ctx.log.warn(`${entry.sopInstanceUid}: the new copy differs from the bytes first filed`);
      result.repaired++;
    } else {
      copied = false;
      result.present++;
      if (entry.sha256 !== undefined && entry.sha256 !== (await sha256Of(input.path, ctx.signal))) {
        ctx.log.warn(
          `${entry.sopInstanceUid}: a different object with this SOP Instance UID is already in the file-set (${entry.fileId.join('\\')}); kept the first`,
        );
      }
    }
    // The renamed file's directory entry, and any folders just made, must reach the disk too.
    if (copied) for (let dir = path.dirname(target); dir !== root && dir.startsWith(root); dir = path.dirname(dir)) touchedDirs.add(dir);
    ctx.progress((i + 1) / ctx.inputs.length);
  }
  ctx.progress(1);
  return { fileSet: placed.fileSet, result };
}

async function readHead(file: string): Promise<Buffer> {
  const handle = await fsp.open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(META_HEAD_BYTES), 0, META_HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Copies the original's bytes to a temporary file, syncs it, then renames it to its File ID. */
async function copyInto(
  root: string,
  input: StepInput,
  target: string,
  signal: AbortSignal,
): Promise<Pick<FileSetEntry, 'size' | 'sha256'>> {
  const tmp = path.join(root, TMP, randomUUID());
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  await pipeline(createReadStream(input.path), tap, createWriteStream(tmp, { flags: 'wx' }), { signal });
  const handle = await fsp.open(tmp, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.mkdir(path.dirname(target), { recursive: true });
  await fsp.rename(tmp, target);
  return { size, sha256: hash.digest('hex') };
}

async function sha256Of(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash, { signal });
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// The index and the DICOMDIR: each written to a temporary file, synced, renamed over the old one.

async function loadFileSet(root: string): Promise<FileSet> {
  let json: string;
  try {
    json = await fsp.readFile(path.join(root, INDEX), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (await exists(path.join(root, DICOMDIR))) {
      throw new Error(
        `${root} holds a DICOMDIR that this step did not write (no ${INDEX} beside it); give the step an empty folder or one it made, so it never overwrites another file-set`,
      );
    }
    return emptyFileSet(newFileSetUid());
  }
  try {
    return parseFileSet(json);
  } catch (err) {
    throw new Error(`${path.join(root, INDEX)} is damaged: ${(err as Error).message}`, { cause: err });
  }
}

async function writeFileSet(root: string, fileSet: FileSet, fileSetId: string): Promise<void> {
  const dicomdir = buildDicomdir(fileSet, { fileSetId });
  // Index first: a crash before the DICOMDIR is renamed leaves an index the next run rebuilds from.
  await replaceFile(root, INDEX, Buffer.from(JSON.stringify(fileSet)));
  await replaceFile(root, DICOMDIR, dicomdir);
  await fsyncDir(root);
}

async function replaceFile(root: string, name: string, bytes: Buffer): Promise<void> {
  const tmp = path.join(root, `${name}.tmp`);
  const handle = await fsp.open(tmp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(tmp, path.join(root, name));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

/** PS3.5 B.2: a UID from a random UUID, 2.25.<the UUID as one decimal integer>. */
function newFileSetUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}
