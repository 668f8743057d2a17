/**
 * Dataset bytes built by hand, explicit VR little endian, so the fuzzer can write what no
 * DICOM library will: wrong lengths, unclosed sequences, bombs. Nothing here validates.
 */
export const UNDEFINED_LENGTH = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function tagBytes(tag: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  return b;
}

/** An element header with a length field as given (it need not match the value). */
export function elementHeader(tag: number, vr: string, length: number): Buffer {
  if (LONG_VRS.has(vr)) {
    const b = Buffer.alloc(12);
    tagBytes(tag).copy(b, 0);
    b.write(vr, 4, 'latin1');
    b.writeUInt32LE(length >>> 0, 8);
    return b;
  }
  const b = Buffer.alloc(8);
  tagBytes(tag).copy(b, 0);
  b.write(vr.padEnd(2).slice(0, 2), 4, 'latin1');
  b.writeUInt16LE(length & 0xffff, 6);
  return b;
}

/** A well-formed element; string values are padded to even length (UI with NUL). */
export function element(tag: number, vr: string, value: Buffer | string): Buffer {
  let v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  if (v.length % 2 === 1) v = Buffer.concat([v, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
  return Buffer.concat([elementHeader(tag, vr, v.length), v]);
}

/** An item (FFFE,E000); undefined length closes it with an item delimiter. */
export function item(content: Buffer, undefinedLength = false): Buffer {
  const head = Buffer.alloc(8);
  tagBytes(0xfffee000).copy(head, 0);
  head.writeUInt32LE(undefinedLength ? UNDEFINED_LENGTH : content.length, 4);
  return undefinedLength ? Buffer.concat([head, content, delimiter(0xfffee00d)]) : Buffer.concat([head, content]);
}

export function delimiter(tag: 0xfffee00d | 0xfffee0dd): Buffer {
  return Buffer.concat([tagBytes(tag), Buffer.alloc(4)]);
}

export function sequence(tag: number, items: Buffer[], undefinedLength = false): Buffer {
  const body = Buffer.concat(items);
  if (undefinedLength) return Buffer.concat([elementHeader(tag, 'SQ', UNDEFINED_LENGTH), body, delimiter(0xfffee0dd)]);
  return Buffer.concat([elementHeader(tag, 'SQ', body.length), body]);
}

export interface InstanceIds {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

/**
 * A small valid CT-like dataset in tag order (size × size 16-bit pixels, 8 by default). `middle` goes between the identifying elements
 * and the pixel data (where the fuzzer puts its sequences), `pixels` is the Pixel Data value.
 */
export function instanceDataset(
  ids: InstanceIds,
  options: { middle?: Buffer; pixels?: Buffer; size?: number; patientName?: string; patientId?: string } = {},
): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16LE(options.size ?? 8);
  const pixels = options.pixels ?? Buffer.alloc((options.size ?? 8) ** 2 * 2, 7);
  return Buffer.concat([
    element(0x00080016, 'UI', ids.sopClassUid),
    element(0x00080018, 'UI', ids.sopInstanceUid),
    element(0x00080060, 'CS', 'CT'),
    element(0x00100010, 'PN', options.patientName ?? 'FUZZ^PATIENT'),
    element(0x00100020, 'LO', options.patientId ?? 'FUZZ'),
    element(0x0020000d, 'UI', ids.studyInstanceUid),
    element(0x0020000e, 'UI', ids.seriesInstanceUid),
    element(0x00200013, 'IS', '1'),
    options.middle ?? Buffer.alloc(0),
    element(0x00280002, 'US', Buffer.from([1, 0])),
    element(0x00280004, 'CS', 'MONOCHROME2'),
    element(0x00280010, 'US', size),
    element(0x00280011, 'US', size),
    element(0x00280100, 'US', Buffer.from([16, 0])),
    element(0x00280101, 'US', Buffer.from([16, 0])),
    element(0x00280102, 'US', Buffer.from([15, 0])),
    element(0x00280103, 'US', Buffer.from([0, 0])),
    element(0x7fe00010, 'OW', pixels),
  ]);
}

/** The fuzzer's sequences: (0020,9221) Dimension Organization Sequence sorts between the middle's neighbours. */
export const FUZZ_SEQUENCE = 0x00209221;

/** Sequences nested `depth` deep, each in one item; undefined lengths are the expensive kind to walk. */
export function nestedSequences(depth: number, undefinedLength: boolean, close = true): Buffer {
  const opens: Buffer[] = [];
  const closes: Buffer[] = [];
  const itemOpen = Buffer.concat([tagBytes(0xfffee000), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  if (!undefinedLength) {
    let inner = element(0x00080100, 'SH', 'LEAF');
    for (let i = 0; i < depth; i++) inner = sequence(FUZZ_SEQUENCE, [item(inner)]);
    return inner;
  }
  for (let i = 0; i < depth; i++) {
    opens.push(elementHeader(FUZZ_SEQUENCE, 'SQ', UNDEFINED_LENGTH), itemOpen);
    closes.push(delimiter(0xfffee00d), delimiter(0xfffee0dd));
  }
  return Buffer.concat(close ? [...opens, ...closes] : opens);
}
