import fs from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { readFileMeta } from '../../core/dicom/part10.ts';
import { dfError } from '../../core/errors.ts';
import type { Provenance, Receiver } from '../../core/receive/receive.ts';
import type { IndexStore } from '../../core/store/index-store.ts';
import { unreadableDataset } from './readable-dataset.ts';

export interface ImportSummary {
  files: number;
  imported: number;
  duplicates: number;
  refused: { file: string; reason: string }[];
}

export interface ImportOptions {
  receiver: Receiver;
  index: IndexStore;
  provenance: Provenance;
  onProgress?: (done: number, total: number, file: string) => void;
}

const DICOMDIR_NAMES = ['DICOMDIR', 'dicomdir'];

/**
 * The files to import from a folder or disc. With a DICOMDIR at the root, the files it refers
 * to (a CD's own index, which also skips viewer software and autorun files); without one, every
 * file in the tree. File IDs on a mounted CD may come out lower-case: matched case-insensitively.
 */
export function collectFiles(root: string): { files: string[]; viaDicomdir: boolean } {
  const stat = fs.statSync(root);
  if (stat.isFile()) return { files: [root], viaDicomdir: false };
  const dicomdir = DICOMDIR_NAMES.map((n) => path.join(root, n)).find((p) => fs.existsSync(p));
  if (dicomdir) {
    const referenced = filesOfDicomdir(dicomdir);
    if (referenced) return { files: referenced, viaDicomdir: true };
  }
  const files: string[] = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (DICOMDIR_NAMES.includes(entry.name) && path.dirname(file) === root) continue;
    files.push(file);
  }
  return { files: files.sort(), viaDicomdir: false };
}

/** PS3.10 8.6: Referenced File IDs are path components relative to the DICOMDIR's folder. */
function filesOfDicomdir(dicomdir: string): string[] | undefined {
  let records: { ReferencedFileID?: string | string[] }[];
  try {
    const buffer = fs.readFileSync(dicomdir);
    const dict = dcmjs.data.DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
    records = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict).DirectoryRecordSequence ?? [];
  } catch {
    return undefined;
  }
  const base = path.dirname(dicomdir);
  const out: string[] = [];
  for (const r of records) {
    if (!r.ReferencedFileID) continue;
    const components = (Array.isArray(r.ReferencedFileID) ? r.ReferencedFileID : String(r.ReferencedFileID).split('\\')).map((c) =>
      c.trim(),
    );
    // A File ID never leaves the file-set: refuse components that would (PS3.10 8.2).
    if (components.some((c) => c === '' || c === '.' || c === '..' || c.includes('/'))) continue;
    const found = resolveCaseInsensitive(base, components);
    if (found) out.push(found);
  }
  return out;
}

function resolveCaseInsensitive(base: string, components: string[]): string | undefined {
  let current = base;
  for (const c of components) {
    const exact = path.join(current, c);
    if (fs.existsSync(exact)) {
      current = exact;
      continue;
    }
    let match: string | undefined;
    try {
      match = fs.readdirSync(current).find((n) => n.toUpperCase() === c.toUpperCase() || n.toUpperCase() === `${c.toUpperCase()}.`);
    } catch {
      return undefined;
    }
    if (!match) return undefined;
    current = path.join(current, match);
  }
  return current;
}

/**
 * Imports files through the same path as the network (spool → arrival → pipelines). An object
 * whose SOP Instance UID the target database already holds is counted as a duplicate and not
 * stored again; files that are not DICOM Part 10 or are malformed are refused with the reason.
 */
export async function importFiles(files: string[], options: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { files: files.length, imported: 0, duplicates: 0, refused: [] };
  const seen = new Set<string>();
  for (const [i, file] of files.entries()) {
    options.onProgress?.(i, files.length, file);
    const outcome = await importOne(file, options, seen);
    if (outcome === 'imported') summary.imported++;
    else if (outcome === 'duplicate') summary.duplicates++;
    else summary.refused.push({ file, reason: outcome.reason });
  }
  options.onProgress?.(files.length, files.length, '');
  return summary;
}

async function importOne(file: string, options: ImportOptions, seen: Set<string>): Promise<'imported' | 'duplicate' | { reason: string }> {
  let meta: ReturnType<typeof readFileMeta>;
  try {
    const head = Buffer.alloc(64 * 1024);
    const fd = fs.openSync(file, 'r');
    let bytesRead: number;
    try {
      bytesRead = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    meta = readFileMeta(head.subarray(0, bytesRead));
  } catch (err) {
    return { reason: dfError('DF_ERR_DATASET_MALFORMED', (err as Error).message).message };
  }
  const { sopInstanceUid } = meta;
  if (seen.has(sopInstanceUid) || (await options.index.instanceExists(options.provenance.database, sopInstanceUid))) {
    // Only a readable object is a duplicate; the receive path checks the others as it stores them.
    const problem = await unreadableDataset(file, meta);
    return problem === undefined ? 'duplicate' : { reason: problem.message };
  }
  const result = await options.receiver.receiveFile(file, options.provenance);
  if (!result.ok) return { reason: result.error.message };
  // A refused file does not make a later copy of its UID a duplicate.
  seen.add(sopInstanceUid);
  return result.record.outcome === 'duplicate-rejected' ? 'duplicate' : 'imported';
}
