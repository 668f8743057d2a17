import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import type { FileMeta } from '../../core/dicom/part10.ts';
import { dfError, isDfError, type DfError } from '../../core/errors.ts';

// (0008,0018) SOP Instance UID.
const SOP_INSTANCE_UID = 0x00080018;

/**
 * Why a Part 10 file's dataset cannot be stored (undefined when it can): every element complete,
 * and the dataset's SOP Instance UID the one its file meta names. The same walk the receive path
 * does, without storing anything: a file called a duplicate must first be a readable object.
 */
export async function unreadableDataset(file: string, meta: FileMeta & { datasetOffset: number }): Promise<DfError | undefined> {
  const ts = meta.transferSyntaxUid;
  const walker = new DatasetWalker({ explicitVr: ts !== IMPLICIT_VR_LE, littleEndian: ts !== EXPLICIT_VR_BE, captureMaxBytes: 128 });
  const walk = new Writable({
    write(chunk: Buffer, _encoding, done) {
      try {
        walker.push(chunk);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  const bytes = fs.createReadStream(file, { start: meta.datasetOffset, highWaterMark: 256 * 1024 });
  let uid: string | undefined;
  try {
    if (ts === DEFLATED_EXPLICIT_VR_LE) await pipeline(bytes, zlib.createInflateRaw(), walk);
    else await pipeline(bytes, walk);
    uid = walker
      .end()
      .get(SOP_INSTANCE_UID)
      ?.value.toString('latin1')
      .replace(/[\0 ]+$/, '');
  } catch (err) {
    // The walker's own errors say where the dataset breaks, as receive reports them.
    return isDfError(err) ? err : dfError('DF_ERR_DATASET_MALFORMED', `${path.basename(file)}: ${(err as Error).message}`, { cause: err });
  }
  if (uid !== meta.sopInstanceUid) {
    return dfError(
      'DF_ERR_DATASET_MISMATCH',
      `${path.basename(file)}: the dataset's SOP Instance UID "${uid ?? ''}" differs from its file meta's "${meta.sopInstanceUid}"`,
    );
  }
  return undefined;
}
