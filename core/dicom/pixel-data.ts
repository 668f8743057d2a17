import { createRequire } from 'node:module';
import { inflateRawSync } from 'node:zlib';
import { scanPart10, type DataSetLike } from './dataset-scan.ts';
import { dfError } from '../errors.ts';
import { EXPLICIT_VR_BE, transferSyntaxByUid } from './transfer-syntaxes.ts';

/**
 * The frames of an image as typed arrays, whatever the transfer syntax: native pixel data is
 * read in place, encapsulated pixel data (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE) is decoded with
 * dcmjs-codecs' WebAssembly codecs. The codecs are synchronous and CPU-bound: call this from a
 * worker thread. `initPixelCodecs()` loads the WASM once per thread (about 30 ms).
 */

/** The attributes of the Image Pixel Module (PS3.3 C.7.6.3) that say how to read the pixels. */
export interface ImagePixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  /** 0 interleaved (R1G1B1 R2G2B2…), 1 planar (all R, then G, then B). */
  planarConfiguration: number;
  photometricInterpretation: string;
  numberOfFrames: number;
}

export type PixelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

export interface DecodedFrames {
  pixel: ImagePixelModule;
  transferSyntaxUid: string;
  /**
   * One typed array per frame, rows × columns × samples long, typed by BitsAllocated and
   * PixelRepresentation, values sign-extended (or masked) to BitsStored. Native frames may be
   * views into the data set's bytes: copy one before changing it. After decoding, colour
   * frames are interleaved RGB and `pixel.photometricInterpretation`/`planarConfiguration` say so.
   */
  frames: PixelArray[];
}

// PS3.5 A.4: encapsulated syntaxes and the dcmjs-codecs decoder for each.
type Decoder = 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeRle' | 'decodeJpegXl';
const decoders: Record<string, Decoder> = {
  '1.2.840.10008.1.2.4.50': 'decodeJpeg',
  '1.2.840.10008.1.2.4.51': 'decodeJpeg',
  '1.2.840.10008.1.2.4.57': 'decodeJpeg',
  '1.2.840.10008.1.2.4.70': 'decodeJpeg',
  '1.2.840.10008.1.2.4.80': 'decodeJpegLs',
  '1.2.840.10008.1.2.4.81': 'decodeJpegLs',
  '1.2.840.10008.1.2.4.90': 'decodeJpeg2000',
  '1.2.840.10008.1.2.4.91': 'decodeJpeg2000',
  '1.2.840.10008.1.2.4.201': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.4.202': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.4.203': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.4.110': 'decodeJpegXl',
  '1.2.840.10008.1.2.4.112': 'decodeJpegXl',
  '1.2.840.10008.1.2.5': 'decodeRle',
};
const ENCAPSULATED_UNCOMPRESSED = '1.2.840.10008.1.2.1.98';
const DEFLATED_IMAGE_FRAME = '1.2.840.10008.1.2.8.1';

/** Whether decodeEncapsulatedPixelData can decode this transfer syntax. */
export function canDecode(transferSyntaxUid: string): boolean {
  return transferSyntaxUid in decoders || transferSyntaxUid === ENCAPSULATED_UNCOMPRESSED || transferSyntaxUid === DEFLATED_IMAGE_FRAME;
}

type Codecs = typeof import('dcmjs-codecs');
let codecs: Codecs | undefined;
let codecsReady: Promise<void> | undefined;

/**
 * Loads dcmjs-codecs and its WebAssembly module, once per thread; later calls return the same
 * promise. Loaded on first need (its 1 MB bundle costs ~100 ms to import): native data never waits.
 */
export function initPixelCodecs(): Promise<void> {
  codecsReady ??= (async () => {
    const module = createRequire(import.meta.url)('dcmjs-codecs') as Codecs;
    await module.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    codecs = module;
  })().catch((err: unknown) => {
    codecsReady = undefined;
    throw dfError('DF_ERR_PIXEL_DECODE', 'the dcmjs-codecs WebAssembly module could not be loaded', { cause: err });
  });
  return codecsReady;
}

/** The Image Pixel Module of a parsed data set (dicom-parser). */
export function imagePixelModule(dataSet: DataSetLike): ImagePixelModule {
  const rows = dataSet.uint16('x00280010');
  const columns = dataSet.uint16('x00280011');
  const bitsAllocated = dataSet.uint16('x00280100');
  if (!rows || !columns || !bitsAllocated) {
    throw dfError('DF_ERR_PIXEL_DECODE', 'the object has no image: Rows, Columns or Bits Allocated is missing');
  }
  const bitsStored = dataSet.uint16('x00280101') ?? bitsAllocated;
  return {
    rows,
    columns,
    samplesPerPixel: dataSet.uint16('x00280002') ?? 1,
    bitsAllocated,
    bitsStored,
    highBit: dataSet.uint16('x00280102') ?? bitsStored - 1,
    pixelRepresentation: dataSet.uint16('x00280103') ?? 0,
    planarConfiguration: dataSet.uint16('x00280006') ?? 0,
    photometricInterpretation: dataSet.string('x00280004') ?? 'MONOCHROME2',
    numberOfFrames: Math.max(1, dataSet.intString('x00280008') ?? 1),
  };
}

/** Reads a Part 10 file's bytes (see dataset-scan.ts; dicom-parser inflates a Deflated data set). */
export function parsePart10(bytes: Uint8Array): DataSetLike {
  try {
    return scanPart10(bytes);
  } catch (err) {
    // dicom-parser throws strings.
    throw dfError('DF_ERR_DATASET_MALFORMED', `not a readable DICOM Part 10 file: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

export function transferSyntaxOf(dataSet: DataSetLike): string {
  return (dataSet.string('x00020010') ?? '1.2.840.10008.1.2').replace(/\0/g, '').trim();
}

/** Every frame of a Part 10 file (its bytes), decoded. */
export async function readPixelFrames(bytes: Uint8Array): Promise<DecodedFrames> {
  const dataSet = parsePart10(bytes);
  return decodeFrames(dataSet, transferSyntaxOf(dataSet));
}

/**
 * The frames of a parsed data set. `frameIndexes` (0-based) limits the work to some frames.
 * Loads the codecs on first use when the pixel data is compressed.
 */
export async function decodeFrames(dataSet: DataSetLike, transferSyntaxUid: string, frameIndexes?: number[]): Promise<DecodedFrames> {
  const element = dataSet.elements.x7fe00010 ?? dataSet.elements.x7fe00008 ?? dataSet.elements.x7fe00009;
  if (element === undefined) throw dfError('DF_ERR_PIXEL_DECODE', 'the object has no Pixel Data (7FE0,0010)');
  const pixel = imagePixelModule(dataSet);
  const wanted = frameIndexes ?? Array.from({ length: pixel.numberOfFrames }, (_, i) => i);
  const bytes = dataSet.byteArray.subarray(
    element.dataOffset,
    element.dataOffset + (element.length === 0xffffffff ? dataSet.byteArray.length : element.length),
  );
  if (element.encapsulatedPixelData || transferSyntaxByUid(transferSyntaxUid)?.encapsulated) {
    if (transferSyntaxUid in decoders) await initPixelCodecs();
    const encapsulated = dataSet.byteArray.subarray(element.dataOffset, element.dataOffset + element.length);
    const extended = extendedOffsets(dataSet);
    const fragments = encapsulatedFrames(encapsulated, pixel.numberOfFrames, transferSyntaxUid, extended);
    const decoded = wanted.map((f) => decodeFrameBytes(frameAt(fragments, f), transferSyntaxUid, pixel));
    return { pixel: decoded[0]?.pixel ?? pixel, transferSyntaxUid, frames: decoded.map((d) => d.frame) };
  }
  const floatKind = element.tag === 'x7fe00008' ? 32 : element.tag === 'x7fe00009' ? 64 : 0;
  const frameBytes = nativeFrameBytes(pixel);
  const frames = wanted.map((f) => {
    if ((f + 1) * frameBytes > bytes.length)
      throw dfError('DF_ERR_PIXEL_DECODE', `Pixel Data holds ${bytes.length} bytes, too few for frame ${f + 1} of ${pixel.numberOfFrames}`);
    const slice = bytes.subarray(f * frameBytes, (f + 1) * frameBytes);
    const width = floatKind ? floatKind / 8 : pixel.bitsAllocated / 8;
    // A view is enough when nothing is changed in place and the samples are aligned.
    const inPlace =
      transferSyntaxUid !== EXPLICIT_VR_BE && (floatKind > 0 || pixel.bitsStored === pixel.bitsAllocated) && slice.byteOffset % width === 0;
    const raw = inPlace ? slice : copyBytes(slice);
    if (transferSyntaxUid === EXPLICIT_VR_BE) swapBytes(raw, width);
    return floatKind
      ? floatKind === 32
        ? new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4)
        : new Float64Array(raw.buffer, raw.byteOffset, raw.length / 8)
      : typedFrame(raw, pixel);
  });
  return { pixel, transferSyntaxUid, frames };
}

/**
 * Decodes an encapsulated Pixel Data value to native little-endian bytes, all frames one after
 * the other, as Explicit VR Little Endian would hold them. `encapsulated` is the element's value:
 * the items (Basic Offset Table, then fragments), with or without the sequence delimiter.
 * The returned module tells the photometric interpretation and planar configuration of the
 * decoded bytes (a YBR JPEG decodes to RGB), to write in the transcoded data set.
 */
export async function decodeEncapsulatedPixelData(
  encapsulated: Uint8Array,
  transferSyntaxUid: string,
  pixel: ImagePixelModule,
  extendedOffsetTable?: number[],
): Promise<{ bytes: Uint8Array; pixel: ImagePixelModule }> {
  if (!canDecode(transferSyntaxUid)) throw dfError('DF_ERR_PIXEL_DECODE', `no decoder for transfer syntax ${transferSyntaxUid}`);
  if (transferSyntaxUid in decoders) await initPixelCodecs();
  const frames = encapsulatedFrames(encapsulated, pixel.numberOfFrames, transferSyntaxUid, extendedOffsetTable);
  const frameBytes = nativeFrameBytes(pixel);
  const out = new Uint8Array(frameBytes * pixel.numberOfFrames + ((frameBytes * pixel.numberOfFrames) % 2));
  let after = pixel;
  for (let f = 0; f < pixel.numberOfFrames; f++) {
    const decoded = decodeFrameBytes(frameAt(frames, f), transferSyntaxUid, pixel);
    after = decoded.pixel;
    out.set(new Uint8Array(decoded.frame.buffer, decoded.frame.byteOffset, decoded.frame.byteLength), f * frameBytes);
  }
  return { bytes: out, pixel: after };
}

/** Bytes of one native frame; PS3.5 8.1.1: frames of 1-bit data are packed without padding. */
function nativeFrameBytes(pixel: ImagePixelModule): number {
  if (pixel.bitsAllocated === 1)
    throw dfError('DF_ERR_PIXEL_DECODE', 'single-bit pixel data (Bits Allocated 1) is not an image dicomflow can process');
  return pixel.rows * pixel.columns * pixel.samplesPerPixel * (pixel.bitsAllocated / 8);
}

function frameAt(frames: Uint8Array[], index: number): Uint8Array {
  const frame = frames[index];
  if (frame === undefined)
    throw dfError('DF_ERR_PIXEL_DECODE', `the encapsulated Pixel Data holds ${frames.length} frame(s); frame ${index + 1} is missing`);
  return frame;
}

function decodeFrameBytes(
  encoded: Uint8Array,
  transferSyntaxUid: string,
  pixel: ImagePixelModule,
): { frame: PixelArray; pixel: ImagePixelModule } {
  const expected = nativeFrameBytes(pixel);
  if (transferSyntaxUid === ENCAPSULATED_UNCOMPRESSED || transferSyntaxUid === DEFLATED_IMAGE_FRAME) {
    const raw = transferSyntaxUid === DEFLATED_IMAGE_FRAME ? new Uint8Array(inflateRawSync(encoded)) : copyBytes(encoded);
    if (raw.length < expected) throw dfError('DF_ERR_PIXEL_DECODE', `a frame decoded to ${raw.length} bytes, expected ${expected}`);
    return { frame: typedFrame(raw.subarray(0, expected), pixel), pixel };
  }
  const decoder = decoders[transferSyntaxUid];
  if (decoder === undefined) throw dfError('DF_ERR_PIXEL_DECODE', `no decoder for transfer syntax ${transferSyntaxUid}`);
  if (codecs === undefined) throw new Error('initPixelCodecs() must complete before compressed frames are decoded');
  const { Context, NativeCodecs } = codecs;
  let decoded: Uint8Array | undefined;
  const context = new Context({
    width: pixel.columns,
    height: pixel.rows,
    bitsAllocated: pixel.bitsAllocated,
    bitsStored: pixel.bitsStored,
    samplesPerPixel: pixel.samplesPerPixel,
    pixelRepresentation: pixel.pixelRepresentation,
    planarConfiguration: pixel.planarConfiguration,
    photometricInterpretation: pixel.photometricInterpretation,
    encodedBuffer: encoded,
  });
  try {
    decoded = NativeCodecs[decoder](context, decoder === 'decodeJpeg' ? { convertColorspaceToRgb: true } : {}).getDecodedBuffer();
  } catch (err) {
    throw dfError(
      'DF_ERR_PIXEL_DECODE',
      `the ${transferSyntaxByUid(transferSyntaxUid)?.name ?? transferSyntaxUid} frame could not be decoded`,
      { cause: err },
    );
  }
  if (decoded === undefined || decoded.length < expected) {
    throw dfError(
      'DF_ERR_PIXEL_DECODE',
      `a ${transferSyntaxByUid(transferSyntaxUid)?.name ?? transferSyntaxUid} frame decoded to ${decoded?.length ?? 0} bytes, expected ${expected}`,
    );
  }
  let after = pixel;
  if (pixel.samplesPerPixel === 3) {
    // JPEG colour is converted to RGB above; RLE and JPEG 2000 keep the photometric but the
    // codecs return the samples interleaved (PS3.5 8.2.2: RLE's segments are planar on the wire).
    const photometric =
      decoder === 'decodeJpeg' && pixel.photometricInterpretation.startsWith('YBR') ? 'RGB' : pixel.photometricInterpretation;
    after = {
      ...pixel,
      photometricInterpretation: photometric === 'YBR_FULL_422' ? 'YBR_FULL' : photometric,
      planarConfiguration: decoder === 'decodeRle' ? pixel.planarConfiguration : 0,
    };
  }
  return { frame: typedFrame(copyBytes(decoded.subarray(0, expected)), after), pixel: after };
}

function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy;
}

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width < 2) return;
  for (let i = 0; i + width <= bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/**
 * A frame's own bytes (little endian, aligned at 0) as the typed array its attributes call for,
 * with bits above BitsStored cleared (unsigned) or replaced by the sign (signed): PS3.5 8.1.1
 * lets them hold overlays or garbage.
 */
function typedFrame(raw: Uint8Array, pixel: ImagePixelModule): PixelArray {
  const signed = pixel.pixelRepresentation === 1;
  const spare = pixel.bitsAllocated - pixel.bitsStored;
  switch (pixel.bitsAllocated) {
    case 8: {
      const a = signed ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : raw;
      if (spare > 0)
        for (let i = 0; i < a.length; i++) a[i] = signed ? (a[i] << (24 + spare)) >> (24 + spare) : a[i] & ((1 << pixel.bitsStored) - 1);
      return a;
    }
    case 16: {
      const a = signed
        ? new Int16Array(raw.buffer, raw.byteOffset, raw.length / 2)
        : new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
      if (spare > 0) {
        const shift = 16 + spare;
        const mask = (1 << pixel.bitsStored) - 1;
        for (let i = 0; i < a.length; i++) a[i] = signed ? (a[i] << shift) >> shift : a[i] & mask;
      }
      return a;
    }
    case 32: {
      const a = signed
        ? new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4)
        : new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4);
      if (spare > 0) {
        for (let i = 0; i < a.length; i++) a[i] = signed ? (a[i] << spare) >> spare : (a[i] << spare) >>> spare;
      }
      return a;
    }
    default:
      throw dfError('DF_ERR_PIXEL_DECODE', `Bits Allocated ${pixel.bitsAllocated} is not supported (8, 16 or 32)`);
  }
}

/** Extended Offset Table (7FE0,0001), PS3.5 A.4: 64-bit offsets of each frame's first fragment. */
function extendedOffsets(dataSet: DataSetLike): number[] | undefined {
  const element = dataSet.elements.x7fe00001;
  if (element === undefined || element.length === 0) return undefined;
  const view = new DataView(dataSet.byteArray.buffer, dataSet.byteArray.byteOffset + element.dataOffset, element.length);
  return Array.from({ length: element.length / 8 }, (_, i) => Number(view.getBigUint64(i * 8, true)));
}

/**
 * Splits encapsulated Pixel Data into one byte range per frame (PS3.5 A.4): by the Extended or
 * Basic Offset Table when there is one, else one fragment per frame when the counts agree, else
 * by the start-of-image markers of the codestreams (JPEG FFD8, JPEG 2000 FF4F).
 */
export function encapsulatedFrames(
  encapsulated: Uint8Array,
  numberOfFrames: number,
  transferSyntaxUid: string,
  extendedOffsetTable?: number[],
): Uint8Array[] {
  const view = new DataView(encapsulated.buffer, encapsulated.byteOffset, encapsulated.byteLength);
  const items: { offset: number; bytes: Uint8Array }[] = [];
  let at = 0;
  while (at + 8 <= encapsulated.length) {
    const group = view.getUint16(at, true);
    const elem = view.getUint16(at + 2, true);
    const length = view.getUint32(at + 4, true);
    if (group !== 0xfffe || elem === 0xe0dd) break;
    if (elem !== 0xe000 || at + 8 + length > encapsulated.length)
      throw dfError('DF_ERR_PIXEL_DECODE', `malformed encapsulated Pixel Data at byte ${at}`);
    items.push({ offset: at, bytes: encapsulated.subarray(at + 8, at + 8 + length) });
    at += 8 + length;
  }
  if (items.length < 2) throw dfError('DF_ERR_PIXEL_DECODE', 'encapsulated Pixel Data has no fragments');
  const [table, ...fragments] = items;
  const firstOffset = fragments[0].offset;
  const join = (parts: { bytes: Uint8Array }[]): Uint8Array => {
    if (parts.length === 1) return parts[0].bytes;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.bytes.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p.bytes, o);
      o += p.bytes.length;
    }
    return out;
  };
  if (numberOfFrames === 1) return [join(fragments)];
  // Offsets are from the first fragment's item tag.
  const offsets =
    extendedOffsetTable ??
    (table.bytes.length >= 4
      ? Array.from({ length: table.bytes.length / 4 }, (_, i) =>
          view.getUint32(table.bytes.byteOffset - encapsulated.byteOffset + i * 4, true),
        )
      : undefined);
  if (offsets !== undefined && offsets.length === numberOfFrames) {
    return offsets.map((start, f) => {
      const end = f + 1 < offsets.length ? offsets[f + 1] : Infinity;
      return join(fragments.filter((p) => p.offset - firstOffset >= start && p.offset - firstOffset < end));
    });
  }
  if (fragments.length === numberOfFrames) return fragments.map((p) => p.bytes);
  const jpeg2000 = decoders[transferSyntaxUid] === 'decodeJpeg2000' || decoders[transferSyntaxUid] === 'decodeHtJpeg2000';
  const starts = (b: Uint8Array) => b.length >= 2 && b[0] === 0xff && b[1] === (jpeg2000 ? 0x4f : 0xd8);
  const frames: { bytes: Uint8Array }[][] = [];
  for (const p of fragments) {
    if (frames.length === 0 || starts(p.bytes)) frames.push([p]);
    else frames[frames.length - 1].push(p);
  }
  if (frames.length !== numberOfFrames) {
    throw dfError(
      'DF_ERR_PIXEL_DECODE',
      `cannot tell the ${numberOfFrames} frames apart in ${fragments.length} fragments without an offset table`,
    );
  }
  return frames.map(join);
}
