import type { FileHandle } from 'node:fs/promises';
import { encodeElement, paddedText } from './element-encoding.ts';
/**
 * The Part 10 file meta information (PS3.10 7.1): a 128-byte preamble, "DICM", then group 0002
 * in explicit VR little endian. Receive writes this first and then the dataset bytes exactly as
 * they arrived, so the stored file is the sender's object plus a header, never a re-encoding.
 */

// A UID under 2.25 (ISO/IEC 9834-8, from a random UUID) identifying dicomflow's implementation.
export const IMPLEMENTATION_CLASS_UID = '2.25.335144947945496701036114997447415247764';
export const IMPLEMENTATION_VERSION_NAME = 'DICOMFLOW_010';

export interface FileMeta {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAeTitle?: string;
}

// The file meta group is always explicit VR little endian (PS3.10 7.1).
function element(group: number, element: number, vr: string, value: Buffer): Buffer {
  return encodeElement(((group << 16) | element) >>> 0, vr, value, true);
}

export function fileMetaHeader(meta: FileMeta): Buffer {
  const elements = [
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 0x0002, 'UI', paddedText(meta.sopClassUid, '\0')),
    element(0x0002, 0x0003, 'UI', paddedText(meta.sopInstanceUid, '\0')),
    element(0x0002, 0x0010, 'UI', paddedText(meta.transferSyntaxUid, '\0')),
    element(0x0002, 0x0012, 'UI', paddedText(IMPLEMENTATION_CLASS_UID, '\0')),
    element(0x0002, 0x0013, 'SH', paddedText(IMPLEMENTATION_VERSION_NAME, ' ')),
  ];
  if (meta.sourceAeTitle) elements.push(element(0x0002, 0x0016, 'AE', paddedText(meta.sourceAeTitle, ' ')));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', groupLength), body]);
}

/** Where the dataset starts in a Part 10 file written by fileMetaHeader (or any Part 10 file). */
export function datasetOffset(file: Buffer): number {
  if (file.length < 144 || file.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  const groupLength = file.readUInt32LE(140);
  return 144 + groupLength;
}

/** Reads the file meta information of a Part 10 file's first bytes (PS3.10 7.1). */
export function readFileMeta(head: Buffer): FileMeta & { datasetOffset: number } {
  if (head.length < 144 || head.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part 10 file (no DICM prefix)');
  let at = 132;
  const values = new Map<number, string>();
  let end = Infinity;
  while (at + 8 <= head.length && at < end) {
    const group = head.readUInt16LE(at);
    if (group !== 0x0002) break;
    const elementNumber = head.readUInt16LE(at + 2);
    const vr = head.toString('latin1', at + 4, at + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR'].includes(vr);
    const length = long ? head.readUInt32LE(at + 8) : head.readUInt16LE(at + 6);
    const valueAt = at + (long ? 12 : 8);
    if (valueAt + length > head.length) throw new Error('file meta information is truncated');
    if (elementNumber === 0x0000) end = valueAt + 4 + head.readUInt32LE(valueAt);
    else values.set(elementNumber, head.toString('latin1', valueAt, valueAt + length).replace(/[\0 ]+$/, ''));
    at = valueAt + length;
  }
  const sopClassUid = values.get(0x0002);
  const sopInstanceUid = values.get(0x0003);
  const transferSyntaxUid = values.get(0x0010);
  if (!sopClassUid || !sopInstanceUid || !transferSyntaxUid) {
    throw new Error('file meta information lacks Media Storage SOP Class/Instance UID or Transfer Syntax UID');
  }
  return { sopClassUid, sopInstanceUid, transferSyntaxUid, sourceAeTitle: values.get(0x0016), datasetOffset: at };
}

// A file meta group larger than this is not one (the usual is a few hundred bytes).
const MAX_FILE_META_BYTES = 1 << 20;

/** The file meta group of an open file, read to the size its group length gives. */
export async function readFileMetaOf(handle: FileHandle): Promise<FileMeta & { datasetOffset: number }> {
  const start = Buffer.alloc(144);
  const { bytesRead } = await handle.read(start, 0, start.length, 0);
  let want = 64 * 1024;
  // (0002,0000) UL FileMetaInformationGroupLength comes first and gives the group's size.
  if (
    bytesRead === 144 &&
    start.readUInt16LE(132) === 0x0002 &&
    start.readUInt16LE(134) === 0x0000 &&
    start.toString('latin1', 136, 138) === 'UL'
  ) {
    want = 144 + start.readUInt32LE(140);
  }
  if (want > MAX_FILE_META_BYTES) throw new Error(`its file meta group claims ${want} bytes`);
  const head = Buffer.alloc(want);
  const { bytesRead: headBytes } = await handle.read(head, 0, want, 0);
  return readFileMeta(head.subarray(0, headBytes));
}
