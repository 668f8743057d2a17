import { dfError } from '../errors.ts';
import { LONG_VRS } from './element-encoding.ts';

/**
 * Walks a DICOM dataset's bytes as they stream in, in constant memory: it checks that the
 * encoding is well formed (every element, sequence and item complete; the dataset ends on an
 * element boundary) and captures the small top-level elements the index needs. The bytes
 * themselves are never changed or kept whole: receive writes them to disk as they come.
 *
 * Sequences (explicit VR SQ) and items are descended into whatever their length, so that an
 * item or element reaching past the end of what contains it is caught here, not by whoever
 * reads the object later; undefined-length ones end at their delimiters (PS3.5 7.5). In implicit
 * VR a defined-length sequence cannot be told from a value without a dictionary and is skipped
 * by length. Encapsulated pixel data (PS3.5 A.4) is a sequence of fragments, skipped by length.
 */

export interface CapturedElement {
  vr: string;
  value: Buffer;
}

export interface WalkerOptions {
  explicitVr: boolean;
  littleEndian: boolean;
  /** Top-level elements up to this many bytes are captured for indexing. */
  captureMaxBytes?: number;
  /** Which of those to capture (default: all): a received object keeps only what its index row needs. */
  capture?: (tag: number) => boolean;
}

const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;
const NO_BYTES = Buffer.alloc(0);

const KNOWN_VRS = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
]);

/** What the walker is inside: the dataset, an undefined-length sequence, or an undefined-length item. */
interface Frame {
  kind: 'dataset' | 'sequence' | 'item';
  explicitVr: boolean;
  /** The tag that opened a sequence frame, for messages. */
  tag?: number;
  /** Dataset offset where a defined-length sequence or item ends. */
  end?: number;
  /** The nearest end among this frame and those around it: nothing inside may pass it. */
  limit: number;
}

export function tagString(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

export class DatasetWalker {
  readonly elements = new Map<number, CapturedElement>();
  private readonly littleEndian: boolean;
  private readonly captureMaxBytes: number;
  private readonly captureTag: ((tag: number) => boolean) | undefined;
  private readonly stack: Frame[];
  private offset = 0;
  /** Partial header bytes carried over between chunks. */
  private header: Buffer = NO_BYTES;
  /** Bytes of the current element value still to skip or capture. */
  private valueRemaining = 0;
  private valueTag = 0;
  private captureParts: Buffer[] | undefined;
  private captureVr = '';
  private lastTopLevelTag = -1;

  constructor(options: WalkerOptions) {
    this.littleEndian = options.littleEndian;
    this.captureMaxBytes = options.captureMaxBytes ?? 1024;
    this.captureTag = options.capture;
    this.stack = [{ kind: 'dataset', explicitVr: options.explicitVr, limit: Infinity }];
  }

  get bytesSeen(): number {
    return this.offset;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.valueRemaining > 0) {
        const take = Math.min(this.valueRemaining, chunk.length - pos);
        if (this.captureParts) this.captureParts.push(Buffer.from(chunk.subarray(pos, pos + take)));
        this.valueRemaining -= take;
        pos += take;
        this.offset += take;
        if (this.valueRemaining === 0) {
          this.finishValue();
          this.closeDefinedFrames();
        }
        continue;
      }
      pos = this.readHeader(chunk, pos);
    }
  }

  /** Call once every byte has been pushed; throws if the dataset is incomplete. */
  end(): Map<number, CapturedElement> {
    if (this.valueRemaining > 0) {
      throw malformed(`dataset ends inside the value of ${tagString(this.valueTag)}, ${this.valueRemaining} bytes short`, this.offset);
    }
    if (this.header.length > 0) {
      throw malformed(`dataset ends inside an element header (${this.header.length} bytes)`, this.offset);
    }
    if (this.stack.length > 1) {
      const open = this.stack[this.stack.length - 1];
      const what = open.kind === 'item' ? 'an item' : `sequence ${tagString(open.tag ?? 0)}`;
      if (open.end !== undefined)
        throw malformed(`dataset ends inside ${what}, ${open.end - this.offset} bytes before its declared end`, this.offset);
      throw malformed(`dataset ends inside ${what} that was never delimited`, this.offset);
    }
    return this.elements;
  }

  private finishValue(): void {
    if (this.captureParts) {
      const value = this.captureParts.length === 1 ? this.captureParts[0] : Buffer.concat(this.captureParts);
      this.elements.set(this.valueTag, { vr: this.captureVr, value });
      this.captureParts = undefined;
    }
  }

  private readHeader(chunk: Buffer, pos: number): number {
    const frame = this.stack[this.stack.length - 1];
    // Most headers lie whole within a chunk: read there, with no buffer made per element (the
    // carried-header path made five, a fifth of what receiving an object allocated).
    if (this.header.length === 0 && chunk.length - pos >= 12) return pos + this.element(frame, chunk, pos);
    // Read the tag first: item tags have no VR field whatever the transfer syntax.
    let p = this.fill(chunk, pos, 4);
    if (p === -1) return chunk.length;
    const tag = this.readTag(this.header, 0);
    const explicit = frame.explicitVr && tag >>> 16 !== 0xfffe;
    let headerLength = 8;
    if (explicit) {
      p = this.fill(chunk, p, 6);
      if (p === -1) return chunk.length;
      headerLength = LONG_VRS.has(this.header.toString('latin1', 4, 6)) ? 12 : 8;
    }
    p = this.fill(chunk, p, headerLength);
    if (p === -1) return chunk.length;
    const h = this.header;
    this.header = NO_BYTES;
    this.element(frame, h, 0);
    return p;
  }

  /** The element header at `at` in `bytes` (all of it there): acts on it, returns its length. */
  private element(frame: Frame, bytes: Buffer, at: number): number {
    const tag = this.readTag(bytes, at);
    const explicit = frame.explicitVr && tag >>> 16 !== 0xfffe;
    let vr = '';
    let headerLength = 8;
    let length: number;
    if (explicit) {
      vr = bytes.toString('latin1', at + 4, at + 6);
      headerLength = LONG_VRS.has(vr) ? 12 : 8;
      this.offset += headerLength;
      if (!KNOWN_VRS.has(vr)) throw malformed(`element ${tagString(tag)} has an invalid VR "${printable(vr)}"`, this.offset - headerLength);
      length = headerLength === 12 ? this.readU32(bytes, at + 8) : this.readU16(bytes, at + 6);
    } else {
      this.offset += headerLength;
      length = this.readU32(bytes, at + 4);
    }
    this.onElement(frame, tag, vr, length);
    return headerLength;
  }

  /**
   * Appends bytes from the chunk to the carried header until it holds `n` bytes. Returns the
   * chunk position after the bytes used, or -1 if the chunk ran out first.
   */
  private fill(chunk: Buffer, pos: number, n: number): number {
    if (this.header.length >= n) return pos;
    const missing = n - this.header.length;
    if (chunk.length - pos < missing) {
      this.header = Buffer.concat([this.header, chunk.subarray(pos)]);
      return -1;
    }
    this.header =
      this.header.length === 0 ? chunk.subarray(pos, pos + n) : Buffer.concat([this.header, chunk.subarray(pos, pos + missing)]);
    return pos + missing;
  }

  private onElement(frame: Frame, tag: number, vr: string, length: number): void {
    const at = this.offset;
    if (at > frame.limit) throw malformed(`element ${tagString(tag)} starts past the end of the item or sequence holding it`, at);
    if (length !== UNDEFINED && at + length > frame.limit) {
      throw malformed(`element ${tagString(tag)} declares ${length} bytes, past the end of the item or sequence holding it`, at);
    }
    if (tag === ITEM_DELIMITER || tag === SEQUENCE_DELIMITER) {
      const kind = tag === ITEM_DELIMITER ? 'item' : 'sequence';
      if (frame.kind !== kind) throw malformed(`${kind} delimiter outside an undefined-length ${kind}`, at);
      // Some writers close defined-length ones with a delimiter too: tolerated, the length rules.
      if (frame.end === undefined) this.stack.pop();
      this.closeDefinedFrames();
      return;
    }
    if (tag === ITEM) {
      if (frame.kind !== 'sequence') throw malformed(`item tag (FFFE,E000) outside a sequence`, at);
      if (frame.tag === PIXEL_DATA) {
        this.skip(tag, length);
        return;
      }
      this.open({ kind: 'item', explicitVr: frame.explicitVr }, frame, length);
      return;
    }
    if (frame.kind === 'sequence') throw malformed(`element ${tagString(tag)} inside a sequence but outside any item`, at);

    if (length === UNDEFINED) {
      // PS3.5 6.2.2: an undefined-length UN is a sequence encoded in implicit VR little endian.
      const isSequence = !frame.explicitVr || vr === 'SQ' || vr === 'UN';
      const isEncapsulatedPixels = tag === PIXEL_DATA && (vr === 'OB' || vr === 'OW');
      if (!isSequence && !isEncapsulatedPixels) throw malformed(`element ${tagString(tag)} (${vr}) has undefined length`, at);
      const explicitInside = vr === 'UN' ? false : frame.explicitVr;
      this.stack.push({ kind: 'sequence', explicitVr: explicitInside, tag, limit: frame.limit });
      this.noteTopLevel(frame, tag, at);
      return;
    }
    this.noteTopLevel(frame, tag, at);
    if (vr === 'SQ') {
      this.open({ kind: 'sequence', explicitVr: frame.explicitVr, tag }, frame, length);
      return;
    }
    const capture =
      frame.kind === 'dataset' && length <= this.captureMaxBytes && vr !== 'SQ' && tag !== PIXEL_DATA && (this.captureTag?.(tag) ?? true);
    if (capture) {
      this.captureParts = [];
      this.captureVr = vr;
    }
    this.skip(tag, length);
  }

  /** Enters a sequence or item (defined or undefined length). */
  private open(frame: Omit<Frame, 'limit'>, parent: Frame, length: number): void {
    if (length === UNDEFINED) {
      this.stack.push({ ...frame, limit: parent.limit });
      return;
    }
    const end = this.offset + length;
    this.stack.push({ ...frame, end, limit: Math.min(end, parent.limit) });
    this.closeDefinedFrames();
  }

  /** Leaves every defined-length sequence or item whose last byte has been read. */
  private closeDefinedFrames(): void {
    for (
      let top = this.stack[this.stack.length - 1];
      top.end !== undefined && this.offset >= top.end;
      top = this.stack[this.stack.length - 1]
    ) {
      this.stack.pop();
    }
  }

  private noteTopLevel(frame: Frame, tag: number, at: number): void {
    if (frame.kind !== 'dataset') return;
    // PS3.5 7.1: elements appear in increasing tag order; a repeat or a step back means the
    // bytes are not one dataset (e.g. two concatenated objects or garbage after a truncation).
    if (tag <= this.lastTopLevelTag) {
      throw malformed(`element ${tagString(tag)} is out of order after ${tagString(this.lastTopLevelTag)}`, at);
    }
    this.lastTopLevelTag = tag;
  }

  private skip(tag: number, length: number): void {
    this.valueTag = tag;
    this.valueRemaining = length;
    if (length === 0) {
      this.finishValue();
      this.closeDefinedFrames();
    }
  }

  private readTag(b: Buffer, at: number): number {
    const group = this.readU16(b, at);
    const element = this.readU16(b, at + 2);
    return ((group << 16) | element) >>> 0;
  }

  private readU16(b: Buffer, at: number): number {
    return this.littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }

  private readU32(b: Buffer, at: number): number {
    return this.littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }
}

function printable(s: string): string {
  return s.replace(/[^ -~]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function malformed(reason: string, offset: number) {
  return dfError('DF_ERR_DATASET_MALFORMED', `${reason} (at byte ${offset} of the dataset)`, { details: { offset } });
}
