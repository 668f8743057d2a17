/**
 * The little-endian element encoding shared by everything here that reads or writes data set
 * bytes directly (PS3.5 7.1): which VRs have a long header, an element's header, even-length
 * values.
 */

// PS3.5 7.1.2: these VRs have a 2-byte reserved field and a 4-byte length in explicit VR.
export const LONG_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** An element's header: tag, then (explicit VR) the VR and a 2- or 4-byte length, or (implicit VR, items, delimiters) a 4-byte length. */
export function elementHeader(tag: number, vr: string, length: number, explicit: boolean): Buffer {
  const long = LONG_VRS.has(vr);
  const b = Buffer.alloc(explicit && long ? 12 : 8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  if (!explicit) b.writeUInt32LE(length, 4);
  else {
    b.write(vr, 4, 'latin1');
    if (long) b.writeUInt32LE(length, 8);
    else b.writeUInt16LE(length, 6);
  }
  return b;
}

/** A whole element: its header and value. */
export function encodeElement(tag: number, vr: string, value: Buffer, explicit: boolean): Buffer {
  return Buffer.concat([elementHeader(tag, vr, value.length, explicit), value]);
}

/** A sequence item of defined length holding `body` (its elements, already encoded). */
export function encodeItem(body: Buffer): Buffer {
  return Buffer.concat([elementHeader(0xfffee000, '', body.length, false), body]);
}

/** PS3.5 7.1.1: a string value padded to even length (UIDs with NUL, text with a space). */
export function paddedText(value: string, pad: ' ' | '\0' = ' '): Buffer {
  const b = Buffer.from(value, 'latin1');
  return b.length % 2 === 0 ? b : Buffer.concat([b, Buffer.from(pad, 'latin1')]);
}

/** A US value. */
export function uint16Value(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value, 0);
  return b;
}
