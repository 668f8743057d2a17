import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { compress, ctSeries, petSeries, secondaryCaptureRgb, TransferSyntax } from '../../test/fixtures/builder.ts';
import { compressSeries } from '../../test/fixtures/volumes.ts';
import { isDfError } from '../errors.ts';
import { scanPart10, sequenceItems } from './dataset-scan.ts';
import {
  decodeEncapsulatedPixelData,
  decodeFrames,
  encapsulatedFrames,
  imagePixelModule,
  parsePart10,
  readPixelFrames,
} from './pixel-data.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-pixel-data-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function nativePixels(file: string): Int16Array {
  const ds = dicomParser.parseDicom(fs.readFileSync(file));
  const el = ds.elements.x7fe00010;
  return new Int16Array(new Uint8Array(ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length)).buffer);
}

/** An encapsulated Pixel Data value: an empty Basic Offset Table, then the given fragments. */
function encapsulate(fragments: Uint8Array[]): Uint8Array {
  const parts: Buffer[] = [];
  const item = (bytes: Uint8Array) => {
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0xfffe, 0);
    header.writeUInt16LE(0xe000, 2);
    header.writeUInt32LE(bytes.length, 4);
    parts.push(header, Buffer.from(bytes));
  };
  item(new Uint8Array(0));
  fragments.forEach(item);
  parts.push(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

describe('scanPart10', () => {
  it('finds every top-level element where dicom-parser does, in explicit and implicit VR, encapsulated too', async () => {
    const pet = await petSeries(path.join(root, 'pet'), { slices: 1, rows: 8, cols: 8, frameDurationsSec: [60], withPrivateTags: true });
    const implicit = await ctSeries(path.join(root, 'implicit'), {
      slices: 1,
      rows: 8,
      cols: 8,
      transferSyntaxUid: TransferSyntax.ImplicitVRLittleEndian,
    });
    const rle = await compress(implicit.files[0], 'rle', path.join(root, 'rle.dcm'));
    for (const file of [pet.files[0], implicit.files[0], rle.file]) {
      const bytes = fs.readFileSync(file);
      const scanned = scanPart10(bytes);
      const parsed = dicomParser.parseDicom(bytes);
      for (const [tag, element] of Object.entries(parsed.elements)) {
        expect(scanned.elements[tag]?.dataOffset, `${path.basename(file)} ${tag}`).toBe(element.dataOffset);
        if (!element.hadUndefinedLength) expect(scanned.elements[tag].length, `${path.basename(file)} ${tag}`).toBe(element.length);
        // Text values read alike (binary ones are not text: their string() is meaningless).
        const text = parsed.string(tag);
        if (element.items === undefined && text && /^[\x20-\x7e]*$/.test(text)) expect(scanned.string(tag), tag).toBe(text);
      }
      expect(Object.keys(scanned.elements).sort()).toEqual(Object.keys(parsed.elements).sort());
    }
    const drug = sequenceItems(scanPart10(fs.readFileSync(pet.files[0])), 'x00540016');
    expect(drug[0].string('x00180031')).toBe('Fluorodeoxyglucose');
  });
});

describe('pixel data', () => {
  it('reads native and compressed frames to the same signed values', async () => {
    const ct = await ctSeries(path.join(root, 'ct'), { slices: 1, rows: 16, cols: 16 });
    const expected = Array.from(nativePixels(ct.files[0]));
    const native = await readPixelFrames(fs.readFileSync(ct.files[0]));
    expect(native.frames[0]).toBeInstanceOf(Int16Array);
    expect(Array.from(native.frames[0])).toEqual(expected);
    for (const kind of ['jpeg-lossless', 'jpeg-ls', 'rle', 'jpeg2000'] as const) {
      const compressed = await compressSeries(ct, kind, path.join(root, `ct-${kind}`));
      const decoded = await readPixelFrames(fs.readFileSync(compressed.files[0]));
      expect(decoded.transferSyntaxUid).toBe(compressed.transferSyntaxUid);
      expect(Array.from(decoded.frames[0]), kind).toEqual(expected);
    }
  });

  it('decodes an encapsulated multi-frame value without an offset table to native bytes', async () => {
    const ct = await ctSeries(path.join(root, 'ct3'), { slices: 3, rows: 8, cols: 8 });
    const rle = await compressSeries(ct, 'rle', path.join(root, 'ct3-rle'));
    // One RLE fragment per frame, taken from the three single-frame files.
    const fragments = rle.files.map((file) => {
      const ds = parsePart10(fs.readFileSync(file));
      const el = ds.elements.x7fe00010;
      return encapsulatedFrames(ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length), 1, TransferSyntax.RleLossless)[0];
    });
    const pixel = { ...imagePixelModule(parsePart10(fs.readFileSync(ct.files[0]))), numberOfFrames: 3 };
    const { bytes, pixel: after } = await decodeEncapsulatedPixelData(encapsulate(fragments), TransferSyntax.RleLossless, pixel);
    expect(after.photometricInterpretation).toBe('MONOCHROME2');
    const frames = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    expect(Array.from(frames)).toEqual(ct.files.flatMap((f) => Array.from(nativePixels(f))));
  });

  it('decodes JPEG baseline colour to interleaved RGB and says so', async () => {
    const sc = await secondaryCaptureRgb(path.join(root, 'sc'), { rows: 32, cols: 32 });
    const jpeg = await compress(sc.files[0], 'jpeg-baseline', path.join(root, 'sc-jpeg.dcm'));
    const ds = parsePart10(fs.readFileSync(jpeg.file));
    const decoded = await decodeFrames(ds, jpeg.transferSyntaxUid);
    expect(decoded.pixel).toMatchObject({ samplesPerPixel: 3, photometricInterpretation: 'RGB', planarConfiguration: 0 });
    expect(decoded.frames[0]).toHaveLength(32 * 32 * 3);
    // Lossy, but close: the top-left pixel of the gradient is near black in red and green.
    expect(decoded.frames[0][0]).toBeLessThan(12);
  });

  it('names what is wrong with a corrupt codestream', async () => {
    const ct = await ctSeries(path.join(root, 'bad'), { slices: 1, rows: 16, cols: 16 });
    const jls = await compress(ct.files[0], 'jpeg-ls', path.join(root, 'bad-jls.dcm'));
    const bytes = fs.readFileSync(jls.file);
    const ds = parsePart10(bytes);
    const el = ds.elements.x7fe00010;
    bytes.fill(0x55, el.dataOffset + 40, el.dataOffset + el.length - 12); // the codestream, not the item headers
    const error = await decodeFrames(parsePart10(bytes), jls.transferSyntaxUid).catch((err: unknown) => err);
    expect(isDfError(error, 'DF_ERR_PIXEL_DECODE'), String(error)).toBe(true);
  });
});
