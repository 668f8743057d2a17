import { readFile } from 'node:fs/promises';

export interface Part10Parts {
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** Byte offset of the data set: after the preamble, 'DICM' and the whole meta group. */
  datasetOffset: number;
  /** The data set bytes exactly as in the file (a view, not a copy). */
  dataset: Buffer;
}

// PS3.5 7.1.2: these explicit VRs have 2 reserved bytes and a 4-byte length.
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/**
 * Splits a Part 10 file into its meta information and data set bytes (PS3.10 7.1). Walks the
 * group 0002 elements one by one rather than trusting the group length, so a file with a wrong
 * FileMetaInformationGroupLength still splits where a reader would.
 */
export function splitPart10(bytes: Buffer): Part10Parts {
  if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') {
    throw new Error('not a DICOM Part 10 file: no "DICM" after the 128-byte preamble');
  }
  const meta = new Map<number, Buffer>();
  let offset = 132;
  while (offset + 8 <= bytes.length && bytes.readUInt16LE(offset) === 0x0002) {
    const element = bytes.readUInt16LE(offset + 2);
    const vr = bytes.toString('latin1', offset + 4, offset + 6);
    let length: number;
    let valueOffset: number;
    if (LONG_VRS.has(vr)) {
      length = bytes.readUInt32LE(offset + 8);
      valueOffset = offset + 12;
    } else {
      length = bytes.readUInt16LE(offset + 6);
      valueOffset = offset + 8;
    }
    meta.set(element, bytes.subarray(valueOffset, valueOffset + length));
    offset = valueOffset + length;
  }
  const text = (element: number): string => (meta.get(element)?.toString('latin1') ?? '').replace(/[\0 ]+$/, '');
  return {
    transferSyntaxUid: text(0x0010),
    sopClassUid: text(0x0002),
    sopInstanceUid: text(0x0003),
    datasetOffset: offset,
    dataset: bytes.subarray(offset),
  };
}

export async function readPart10(file: string): Promise<Part10Parts> {
  return splitPart10(await readFile(file));
}
