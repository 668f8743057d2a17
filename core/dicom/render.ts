import dcmjs from 'dcmjs';
import { DfError } from '../errors.ts';
import { canDecode, decodeFrames, parsePart10 } from './pixel-data.ts';

/**
 * The grayscale and colour display pipelines of PS3.4 N.2 for one frame of a DICOM image:
 * stored values → modality LUT (rescale or Modality LUT Sequence) → VOI (window or VOI LUT
 * Sequence) → presentation (MONOCHROME1 inverted); palette colour through its LUTs; RGB and YBR
 * to RGB. Frames are decoded by pixel-data.ts (dcmjs-codecs' WebAssembly codecs for compressed
 * syntaxes, synchronous: run this in a worker thread).
 *
 * Not dcmjs-imaging's renderer: it truncates rescaled values to integers (a PET slope of 1e-4
 * collapses the image), ignores the Modality and VOI LUT Sequences and renders 8 bits only.
 */

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** Named windows on modality values (CT: Hounsfield units). */
export const WINDOW_PRESETS = {
  brain: { center: 40, width: 80 },
  subdural: { center: 75, width: 215 },
  stroke: { center: 40, width: 40 },
  'soft-tissue': { center: 40, width: 400 },
  mediastinum: { center: 50, width: 350 },
  abdomen: { center: 60, width: 400 },
  liver: { center: 60, width: 160 },
  lung: { center: -600, width: 1500 },
  bone: { center: 400, width: 1800 },
  angio: { center: 300, width: 600 },
} as const;
export type WindowPresetName = keyof typeof WINDOW_PRESETS;
export const WINDOW_PRESET_NAMES = Object.keys(WINDOW_PRESETS) as WindowPresetName[];

/**
 * How to choose the VOI: the object's own (first) window or VOI LUT, a named preset, automatic
 * (the 0.5th–99.5th percentile, robust to a few extreme pixels, or the full min–max range), or
 * an explicit centre and width.
 */
export type WindowChoice =
  | 'object'
  | 'auto'
  | 'min-max'
  | WindowPresetName
  | { center: number; width: number; function?: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID' };

/** The JSON Schema of a WindowChoice, for plugins' options. */
export const windowOptionSchema = {
  description:
    'Window (VOI) of monochrome images: "object" (the image’s own window or VOI LUT; automatic when it has none), "auto" (0.5th–99.5th percentile of the frame), "min-max", a preset (brain, subdural, stroke, soft-tissue, mediastinum, abdomen, liver, lung, bone, angio; centre/width in modality units, HU for CT) or { "center", "width" }.',
  default: 'object',
  anyOf: [
    {
      enum: [
        'object',
        'auto',
        'min-max',
        'brain',
        'subdural',
        'stroke',
        'soft-tissue',
        'mediastinum',
        'abdomen',
        'liver',
        'lung',
        'bone',
        'angio',
      ],
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['center', 'width'],
      properties: { center: { type: 'number' }, width: { type: 'number', exclusiveMinimum: 0 } },
    },
  ],
} as const;

export interface AppliedWindow {
  center: number;
  width: number;
  /** VOI LUT Function (C.11.2.1.3). */
  function: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';
  /** Where it came from: 'object', 'object-voi-lut', a preset name, 'auto', 'min-max' or 'explicit'. */
  source: string;
}

export interface RenderedFrame {
  width: number;
  height: number;
  /** 1: grey, 3: RGB interleaved. */
  channels: 1 | 3;
  bitDepth: 8 | 16;
  pixels: Uint8Array | Uint16Array;
  /** Monochrome images: the window applied (absent when a VOI LUT Sequence was used). */
  window?: AppliedWindow;
}

interface Lut {
  /** First stored value mapped. */
  first: number;
  /** Bits per entry, from the descriptor. */
  bits: number;
  data: Uint16Array | Int16Array;
}

interface FrameTransforms {
  slope: number;
  intercept: number;
  modalityLut?: Lut;
  windows: { center: number; width: number }[];
  voiFunction: AppliedWindow['function'];
  voiLut?: Lut;
}

/** An image object read once, whose frames are rendered on demand. */
export interface DisplayImage {
  transferSyntaxUid: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  planarConfiguration: number;
  numberOfFrames: number;
  pixelPaddingValue?: number;
  /** Natural dcmjs data set of the header (everything before Pixel Data). */
  dataset: Record<string, any>;
  /** Frame `index` (0-based), decoded. */
  decode(index: number): Promise<DecodedFrame>;
  transforms(index: number): FrameTransforms;
  palette?: { red: Lut; green: Lut; blue: Lut };
}

export class RenderError extends DfError {
  readonly notAnImage: boolean;
  constructor(message: string, options: { notAnImage?: boolean } = {}) {
    super('DF_ERR_PIXEL_DECODE', message);
    this.name = 'RenderError';
    this.notAnImage = options.notAnImage ?? false;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

const num = (v: unknown): number | undefined => {
  const x = Array.isArray(v) ? v[0] : v;
  if (x === undefined || x === null || x === '') return undefined;
  const n = Number(x);
  return Number.isFinite(n) ? n : undefined;
};
const nums = (v: unknown): number[] =>
  v === undefined || v === null ? [] : (Array.isArray(v) ? v : [v]).map(Number).filter(Number.isFinite);
const first = <T>(v: T[] | T | undefined): T | undefined => (Array.isArray(v) ? v[0] : v);

function bytesOf(value: unknown): Uint8Array {
  const v = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return concat(v.map(bytesOf));
  throw new RenderError('unexpected binary value');
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** LUT Descriptor (C.11.1.1.1): entries (0 means 65536), first mapped value, bits per entry. */
function readLut(descriptor: unknown, data: unknown, signedFirst: boolean): Lut | undefined {
  const d = nums(descriptor);
  if (d.length < 3 || data === undefined || data === null) return undefined;
  const entries = d[0] === 0 ? 65536 : d[0];
  // The first value is US or SS as the pixel data is; dcmjs reads the descriptor as unsigned.
  const firstMapped = signedFirst && d[1] > 32767 ? d[1] - 65536 : d[1];
  const bits = d[2];
  let values: Uint16Array;
  if (Array.isArray(data) && typeof data[0] === 'number') values = Uint16Array.from(data as number[]);
  else {
    const bytes = bytesOf(data);
    // 8-bit entries packed one per byte (some writers) or one per 16-bit word (PS3.3 C.7.6.3.1.6).
    if (bits <= 8 && bytes.length === entries) values = Uint16Array.from(bytes);
    else {
      const aligned = bytes.byteOffset % 2 === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
      values = new Uint16Array(aligned.buffer, aligned.byteOffset, Math.floor(aligned.length / 2)).slice();
    }
  }
  if (values.length < entries) throw new RenderError(`LUT Data holds ${values.length} entries, its descriptor says ${entries}`);
  return { first: firstMapped, bits, data: values.subarray(0, entries) };
}

function lutLookup(lut: Lut, x: number): number {
  const i = Math.round(x) - lut.first;
  return lut.data[i < 0 ? 0 : i >= lut.data.length ? lut.data.length - 1 : i];
}

/** Parses a Part 10 file's bytes for display. Throws RenderError when the object has no image. */
export function readDisplayImage(bytes: Uint8Array): DisplayImage {
  // A Node Buffer may be a view into a shared slab (and its slice() copies nothing): copy it out.
  const buffer =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? (bytes.buffer as ArrayBuffer)
      : Uint8Array.prototype.slice.call(bytes).buffer;
  // dcmjs for the header (sequences, LUTs, multi-valued windows come naturalized); the pixels
  // through pixel-data.ts from its own parse.
  const file = DicomMessage.readFile(buffer, { ignoreErrors: true, untilTag: '7FE00010', includeUntilTagValue: false });
  const meta = DicomMetaDictionary.naturalizeDataset(file.meta);
  const ds = DicomMetaDictionary.naturalizeDataset(file.dict) as Record<string, any>;
  const transferSyntaxUid: string = String(meta.TransferSyntaxUID ?? '')
    .replace(/\0/g, '')
    .trim();
  const parsed = parsePart10(bytes);
  const pixelElement = parsed.elements.x7fe00010;
  if (pixelElement === undefined) throw new RenderError('the object holds no Pixel Data (not an image)', { notAnImage: true });

  const rows = num(ds.Rows) ?? 0;
  const columns = num(ds.Columns) ?? 0;
  const samplesPerPixel = num(ds.SamplesPerPixel) ?? 1;
  const bitsAllocated = num(ds.BitsAllocated) ?? 16;
  const bitsStored = num(ds.BitsStored) ?? bitsAllocated;
  const highBit = num(ds.HighBit) ?? bitsStored - 1;
  const signed = num(ds.PixelRepresentation) === 1;
  const numberOfFrames = Math.max(1, num(ds.NumberOfFrames) ?? 1);
  const photometricInterpretation = String(first(ds.PhotometricInterpretation) ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2')).trim();
  if (rows <= 0 || columns <= 0) throw new RenderError('Rows or Columns missing');

  const encapsulated = pixelElement.encapsulatedPixelData === true;
  if (encapsulated && !canDecode(transferSyntaxUid)) throw new RenderError(`transfer syntax ${transferSyntaxUid} cannot be decoded here`);
  // Two native layouts pixel-data.ts does not read: bit-packed frames (Bits Allocated 1) and
  // YBR_*_422 kept uncompressed (two samples a pixel, C.7.6.3.1.2).
  const ownNative =
    !encapsulated &&
    (bitsAllocated === 1 || photometricInterpretation === 'YBR_FULL_422' || photometricInterpretation === 'YBR_PARTIAL_422');
  const decode = async (index: number): Promise<DecodedFrame> => {
    if (ownNative) {
      const all = parsed.byteArray.subarray(pixelElement.dataOffset, pixelElement.dataOffset + pixelElement.length);
      const count =
        rows * columns * (bitsAllocated === 1 ? samplesPerPixel : photometricInterpretation.endsWith('422') ? 2 : samplesPerPixel);
      const startBit = index * count * bitsAllocated;
      if (startBit + count * bitsAllocated > all.length * 8) throw new RenderError(`Pixel Data too short for frame ${index + 1}`);
      return {
        samples: storedValues(all.subarray(startBit >> 3), count, bitsAllocated, bitsStored, highBit, signed, startBit % 8),
        photometricInterpretation,
        planarConfiguration: num(ds.PlanarConfiguration) ?? 0,
      };
    }
    const decoded = await decodeFrames(parsed, transferSyntaxUid, [index]);
    return {
      samples: decoded.frames[0],
      photometricInterpretation: decoded.pixel.photometricInterpretation.trim(),
      planarConfiguration: decoded.pixel.planarConfiguration,
    };
  };

  const shared = first(ds.SharedFunctionalGroupsSequence) as Record<string, any> | undefined;
  const perFrame = ds.PerFrameFunctionalGroupsSequence as Record<string, any>[] | undefined;
  const modalityLutItem = first(ds.ModalityLUTSequence) as Record<string, any> | undefined;
  const voiLutItem = first(ds.VOILUTSequence) as Record<string, any> | undefined;
  const base: FrameTransforms = {
    slope: num(ds.RescaleSlope) ?? 1,
    intercept: num(ds.RescaleIntercept) ?? 0,
    modalityLut: modalityLutItem ? readLut(modalityLutItem.LUTDescriptor, modalityLutItem.LUTData, signed) : undefined,
    windows: windowsOf(ds.WindowCenter, ds.WindowWidth),
    voiFunction: voiFunctionOf(ds.VOILUTFunction),
    voiLut: voiLutItem ? readLut(voiLutItem.LUTDescriptor, voiLutItem.LUTData, signed) : undefined,
  };
  // Enhanced multi-frame objects (C.7.6.16) keep rescale and window in functional groups.
  const transforms = (index: number): FrameTransforms => {
    const groups = [shared, perFrame?.[index]].filter(Boolean) as Record<string, any>[];
    const t = { ...base };
    for (const g of groups) {
      const pvt = first(g.PixelValueTransformationSequence) as Record<string, any> | undefined;
      if (pvt) {
        t.slope = num(pvt.RescaleSlope) ?? t.slope;
        t.intercept = num(pvt.RescaleIntercept) ?? t.intercept;
      }
      const voi = first(g.FrameVOILUTSequence) as Record<string, any> | undefined;
      if (voi) {
        const w = windowsOf(voi.WindowCenter, voi.WindowWidth);
        if (w.length > 0) t.windows = w;
        if (voi.VOILUTFunction !== undefined) t.voiFunction = voiFunctionOf(voi.VOILUTFunction);
      }
    }
    return t;
  };

  let palette: DisplayImage['palette'];
  if (photometricInterpretation === 'PALETTE COLOR') {
    if (ds.SegmentedRedPaletteColorLookupTableData !== undefined && ds.RedPaletteColorLookupTableData === undefined) {
      throw new RenderError('segmented palette colour LUTs are not rendered');
    }
    const red = readLut(ds.RedPaletteColorLookupTableDescriptor, ds.RedPaletteColorLookupTableData, signed);
    const green = readLut(ds.GreenPaletteColorLookupTableDescriptor, ds.GreenPaletteColorLookupTableData, signed);
    const blue = readLut(ds.BluePaletteColorLookupTableDescriptor, ds.BluePaletteColorLookupTableData, signed);
    if (!red || !green || !blue) throw new RenderError('PALETTE COLOR image without its three palette LUTs');
    palette = { red, green, blue };
  }

  return {
    transferSyntaxUid,
    rows,
    columns,
    samplesPerPixel,
    photometricInterpretation,
    bitsAllocated,
    bitsStored,
    highBit,
    signed,
    planarConfiguration: num(ds.PlanarConfiguration) ?? 0,
    numberOfFrames,
    pixelPaddingValue: num(ds.PixelPaddingValue),
    dataset: ds,
    decode,
    transforms,
    palette,
  };
}

function windowsOf(centers: unknown, widths: unknown): { center: number; width: number }[] {
  const c = nums(centers);
  const w = nums(widths);
  return c
    .slice(0, w.length)
    .map((center, i) => ({ center, width: w[i] }))
    .filter((x) => x.width > 0);
}

function voiFunctionOf(v: unknown): AppliedWindow['function'] {
  const f = String(first(v as unknown[]) ?? 'LINEAR')
    .trim()
    .toUpperCase();
  return f === 'LINEAR_EXACT' || f === 'SIGMOID' ? f : 'LINEAR';
}

// ---------------------------------------------------------------------------------------------
// Decoding one frame

export interface DecodedFrame {
  /** Stored values (grey, palette) or samples (colour, in `planarConfiguration` order), masked to Bits Stored. */
  samples: ArrayLike<number>;
  photometricInterpretation: string;
  planarConfiguration: number;
}

/** Stored values of native samples, masked to Bits Stored and sign-extended (C.7.6.3.1.4). */
export function storedValues(
  bytes: Uint8Array,
  count: number,
  bitsAllocated: number,
  bitsStored: number,
  highBit: number,
  signed: boolean,
  bitOffset = 0,
): Float64Array {
  const out = new Float64Array(count);
  const shift = highBit + 1 - bitsStored;
  const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
  const signBit = 2 ** (bitsStored - 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) {
    let raw: number;
    if (bitsAllocated === 1) {
      const bit = bitOffset + i;
      raw = (bytes[bit >> 3] >> (bit & 7)) & 1;
    } else if (bitsAllocated === 8) raw = bytes[i];
    else if (bitsAllocated === 16) raw = view.getUint16(2 * i, true);
    else if (bitsAllocated === 32) raw = view.getUint32(4 * i, true);
    else throw new RenderError(`Bits Allocated ${bitsAllocated} is not rendered`);
    let v = Math.floor(raw / 2 ** shift) % (mask + 1);
    if (signed && v >= signBit) v -= 2 * signBit;
    out[i] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The grayscale pipeline

/** Modality LUT (C.11.1): the Modality LUT Sequence when present, else rescale slope and intercept. */
export function modalityValues(stored: ArrayLike<number>, t: Pick<FrameTransforms, 'slope' | 'intercept' | 'modalityLut'>): Float64Array {
  const out = new Float64Array(stored.length);
  if (t.modalityLut) for (let i = 0; i < stored.length; i++) out[i] = lutLookup(t.modalityLut, stored[i]);
  else for (let i = 0; i < stored.length; i++) out[i] = stored[i] * t.slope + t.intercept;
  return out;
}

/** The window of a WindowChoice for these modality values. */
export function chooseWindow(
  choice: WindowChoice,
  values: Float64Array,
  t: Pick<FrameTransforms, 'windows' | 'voiFunction'>,
  ignore?: (i: number) => boolean,
): AppliedWindow {
  // DICOMweb's `window=center,width,function` names the VOI LUT function too (PS3.18 8.3.5.1.4).
  if (typeof choice === 'object')
    return { center: choice.center, width: choice.width, function: choice.function ?? 'LINEAR', source: 'explicit' };
  if (choice === 'object') {
    if (t.windows.length > 0) return { ...t.windows[0], function: t.voiFunction, source: 'object' };
    return chooseWindow('auto', values, t, ignore);
  }
  if (choice === 'auto' || choice === 'min-max') {
    let sorted: Float64Array;
    if (ignore) {
      const kept = new Float64Array(values.length);
      let n = 0;
      for (let i = 0; i < values.length; i++) if (!ignore(i)) kept[n++] = values[i];
      sorted = kept.subarray(0, n).sort();
    } else sorted = values.slice().sort();
    if (sorted.length === 0) return { center: 0, width: 1, function: 'LINEAR', source: choice };
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
    const [lo, hi] = choice === 'auto' ? [at(0.005), at(0.995)] : [sorted[0], sorted[sorted.length - 1]];
    // With LINEAR (C.11.2.1.2.1) this centre and width put lo on the darkest and hi on the brightest level.
    return { center: (lo + hi + 1) / 2, width: hi - lo + 1, function: 'LINEAR', source: choice };
  }
  const preset = WINDOW_PRESETS[choice];
  if (!preset) throw new RenderError(`unknown window preset "${choice}"`);
  return { ...preset, function: 'LINEAR', source: choice };
}

/** VOI LUT function (C.11.2.1.2 and C.11.2.1.3) to the output range 0…yMax, rounded. */
export function applyWindow(x: number, w: AppliedWindow, yMax: number): number {
  const { center: c, width } = w;
  let y: number;
  if (w.function === 'SIGMOID') y = yMax / (1 + Math.exp((-4 * (x - c)) / width));
  else if (w.function === 'LINEAR_EXACT') {
    if (x <= c - width / 2) y = 0;
    else if (x > c + width / 2) y = yMax;
    else y = ((x - c) / width + 0.5) * yMax;
  } else {
    if (x <= c - 0.5 - (width - 1) / 2) y = 0;
    else if (x > c - 0.5 + (width - 1) / 2) y = yMax;
    else y = ((x - (c - 0.5)) / (width - 1) + 0.5) * yMax;
  }
  return Math.round(Math.min(yMax, Math.max(0, y)));
}

export interface RenderOptions {
  window?: WindowChoice;
  /** 16 for monochrome 16-bit output (PNG); colour is always 8 bits. */
  bitDepth?: 8 | 16;
}

/** Renders frame `index` (0-based) for display. */
export async function renderFrame(image: DisplayImage, index: number, options: RenderOptions = {}): Promise<RenderedFrame> {
  if (index < 0 || index >= image.numberOfFrames) throw new RenderError(`frame ${index + 1} of ${image.numberOfFrames} does not exist`);
  const width = image.columns;
  const height = image.rows;
  const count = width * height;
  const decoded = await image.decode(index);
  const stored = decoded.samples;
  const pi = decoded.photometricInterpretation;

  if (pi === 'MONOCHROME1' || pi === 'MONOCHROME2') {
    const bitDepth = options.bitDepth ?? 8;
    const yMax = bitDepth === 16 ? 65535 : 255;
    const t = image.transforms(index);
    const values = modalityValues(stored, t);
    const pixels = bitDepth === 16 ? new Uint16Array(count) : new Uint8Array(count);
    const choice = options.window ?? 'object';
    let window: AppliedWindow | undefined;
    // PS3.3 C.11.2: a VOI LUT Sequence applies when the object's window is wanted and it has none.
    if (choice === 'object' && t.windows.length === 0 && t.voiLut) {
      const lut = t.voiLut;
      const scale = yMax / (2 ** lut.bits - 1);
      for (let i = 0; i < count; i++) pixels[i] = Math.round(Math.min(yMax, lutLookup(lut, values[i]) * scale));
    } else {
      const padding = image.pixelPaddingValue;
      window = chooseWindow(choice, values, t, padding === undefined ? undefined : (i) => stored[i] === padding);
      for (let i = 0; i < count; i++) pixels[i] = applyWindow(values[i], window, yMax);
    }
    // MONOCHROME1: the minimum value is displayed white (C.7.6.3.1.2).
    if (pi === 'MONOCHROME1') for (let i = 0; i < count; i++) pixels[i] = yMax - pixels[i];
    return { width, height, channels: 1, bitDepth, pixels, window };
  }

  const rgb = new Uint8Array(count * 3);
  if (pi === 'PALETTE COLOR') {
    const palette = image.palette!;
    const luts = [palette.red, palette.green, palette.blue];
    for (let c = 0; c < 3; c++) {
      const lut = luts[c];
      const shift = lut.bits > 8 ? lut.bits - 8 : 0;
      for (let i = 0; i < count; i++) rgb[3 * i + c] = lutLookup(lut, stored[i]) >> shift;
    }
    return { width, height, channels: 3, bitDepth: 8, pixels: rgb };
  }

  if (image.samplesPerPixel !== 3)
    throw new RenderError(`photometric interpretation ${pi} with ${image.samplesPerPixel} sample(s) is not rendered`);
  const samples = sampleArrays(decoded, count, image);
  if (pi === 'RGB' || pi === 'YBR_ICT' || pi === 'YBR_RCT') {
    // J2K decoders undo the ICT/RCT component transform: their output is RGB.
    for (let i = 0; i < count; i++) {
      rgb[3 * i] = samples[0][i];
      rgb[3 * i + 1] = samples[1][i];
      rgb[3 * i + 2] = samples[2][i];
    }
  } else if (pi === 'YBR_FULL' || pi === 'YBR_FULL_422') {
    for (let i = 0; i < count; i++) ybrFullToRgb(samples[0][i], samples[1][i], samples[2][i], rgb, 3 * i);
  } else if (pi === 'YBR_PARTIAL_422' || pi === 'YBR_PARTIAL_420') {
    for (let i = 0; i < count; i++) {
      ybrFullToRgb(
        ((samples[0][i] - 16) * 255) / 219,
        ((samples[1][i] - 128) * 255) / 224 + 128,
        ((samples[2][i] - 128) * 255) / 224 + 128,
        rgb,
        3 * i,
      );
    }
  } else throw new RenderError(`photometric interpretation ${pi} is not rendered`);
  return { width, height, channels: 3, bitDepth: 8, pixels: rgb };
}

/** The three sample planes of a colour frame, at 8 bits, whatever the layout (C.7.6.3.1.3). */
function sampleArrays(decoded: DecodedFrame, count: number, image: DisplayImage): [Uint8Array, Uint8Array, Uint8Array] {
  const planes: [Uint8Array, Uint8Array, Uint8Array] = [new Uint8Array(count), new Uint8Array(count), new Uint8Array(count)];
  const { samples } = decoded;
  const pi = decoded.photometricInterpretation;
  const shift = Math.max(0, image.bitsStored - 8);
  const sample = (k: number): number => samples[k] >> shift;
  // YBR_FULL_422 kept native: two Y samples share one Cb and one Cr (Y1 Y2 Cb Cr).
  if ((pi === 'YBR_FULL_422' || pi === 'YBR_PARTIAL_422') && samples.length < count * 3) {
    for (let i = 0; i < count; i += 2) {
      const k = (i / 2) * 4;
      planes[0][i] = sample(k);
      planes[0][i + 1] = sample(k + 1);
      planes[1][i] = planes[1][i + 1] = sample(k + 2);
      planes[2][i] = planes[2][i + 1] = sample(k + 3);
    }
    return planes;
  }
  if (decoded.planarConfiguration === 1) {
    for (let c = 0; c < 3; c++) for (let i = 0; i < count; i++) planes[c][i] = sample(c * count + i);
  } else {
    for (let i = 0; i < count; i++) for (let c = 0; c < 3; c++) planes[c][i] = sample(3 * i + c);
  }
  return planes;
}

/** YBR_FULL to RGB (C.7.6.3.1.2, the inverse of its equations). */
function ybrFullToRgb(y: number, cb: number, cr: number, out: Uint8Array, at: number): void {
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  out[at] = clamp(y + 1.402 * (cr - 128));
  out[at + 1] = clamp(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128));
  out[at + 2] = clamp(y + 1.772 * (cb - 128));
}

/** Which frames (0-based) a 'frames' option selects. */
export function selectFrames(numberOfFrames: number, which: 'all' | 'middle' | 'first'): number[] {
  if (which === 'first') return [0];
  if (which === 'middle') return [Math.floor((numberOfFrames - 1) / 2)];
  return Array.from({ length: numberOfFrames }, (_, i) => i);
}
