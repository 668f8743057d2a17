import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compress,
  ctSeries,
  ctSliceWithPrivateTags,
  secondaryCaptureRgb,
  TransferSyntax,
  type CompressionKind,
} from '../../test/fixtures/builder.ts';
import { dcmdump, hasTool } from '../../test/helpers/dcmtk.ts';
import { splitPart10 } from '../../test/helpers/part10.ts';
import { transcodeTo } from './transcode.ts';
import { parsePart10 } from './pixel-data.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-transcode-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let privateCt: string;
let ct: string;

beforeAll(async () => {
  privateCt = (await ctSliceWithPrivateTags(path.join(root, 'private'))).files[0];
  ct = (await ctSeries(path.join(root, 'ct'), { slices: 1, rows: 32, cols: 32 })).files[0];
});

/** dcmdump's elements and values, without VRs, lengths and the meta group: what must survive. */
async function elements(file: string): Promise<string[]> {
  const dump = await dcmdump(['-q', '+L', file]);
  expect(dump.code, dump.stderr).toBe(0);
  return dump.stdout
    .split('\n')
    .filter((l) => /^\s*\([0-9a-f]{4},[0-9a-f]{4}\)/i.test(l) && !/^\s*\(0002,/.test(l))
    .map((l) =>
      l
        .replace(/#.*$/, '')
        .replace(/^(\s*\(\w{4},\w{4}\)) \S\S /, '$1 ')
        .replace(/\(Sequence with .*\)|\(Item with .*\)/, '')
        .trimEnd(),
    );
}

function write(name: string, bytes: Buffer): string {
  const file = path.join(root, name);
  fs.writeFileSync(file, bytes);
  return file;
}

describe.skipIf(!hasTool('dcmdump'))('transcodeTo', () => {
  it('Explicit → Implicit → Explicit VR keeps every element, value and the character set', async () => {
    const implicit = await transcodeTo(fs.readFileSync(privateCt), TransferSyntax.ImplicitVRLittleEndian);
    const back = await transcodeTo(implicit, TransferSyntax.ExplicitVRLittleEndian);
    const original = await elements(privateCt);
    const viaImplicit = await elements(write('implicit.dcm', implicit));
    const roundTrip = await elements(write('round-trip.dcm', back));
    expect(viaImplicit.length).toBe(original.length);
    // Private elements lose their VR in Implicit VR (UN on the way back): compare the standard ones
    // as text, the private ones as bytes.
    const standard = (lines: string[]) => lines.filter((l) => !/^\s*\(00[01]9,10/.test(l));
    expect(standard(roundTrip)).toEqual(standard(original));
    expect(original.find((l) => l.startsWith('(0008,0005)'))).toMatch(/ISO_IR 100/);
    const bytes = (file: Buffer) => splitPart10(file).dataset;
    expect(bytes(back).includes(Buffer.from('private text 1'))).toBe(true);
    expect(bytes(back).includes(Buffer.from('nested private item '))).toBe(true);
  });

  it.each<[CompressionKind, string]>([
    ['jpeg-ls', TransferSyntax.JpegLsLossless],
    ['rle', TransferSyntax.RleLossless],
    ['jpeg-lossless', TransferSyntax.JpegLosslessSV1],
  ])('decodes %s to native pixels identical to the original', async (kind, uid) => {
    const { file } = await compress(ct, kind, path.join(root, `ct-${kind}.dcm`));
    expect(parsePart10(fs.readFileSync(file)).string('x00020010')).toBe(uid);
    const out = await transcodeTo(fs.readFileSync(file), TransferSyntax.ExplicitVRLittleEndian);
    const native = parsePart10(out);
    expect(native.string('x00020010')).toBe(TransferSyntax.ExplicitVRLittleEndian);
    const pixels = (d: ReturnType<typeof parsePart10>, bytes: Buffer) =>
      bytes.subarray(d.elements.x7fe00010.dataOffset, d.elements.x7fe00010.dataOffset + d.elements.x7fe00010.length);
    const originalBytes = fs.readFileSync(ct);
    expect(Buffer.compare(pixels(native, out), pixels(parsePart10(originalBytes), originalBytes))).toBe(0);
    // Everything but the pixel data is as dcmcjpls/dcmcrle/dcmcjpeg left it.
    const withoutPixels = (lines: string[]) => lines.filter((l) => !l.startsWith('(7fe0,0010)') && !/^\s*\(fffe,/.test(l));
    expect(withoutPixels(await elements(write(`ct-${kind}-native.dcm`, out)))).toEqual(withoutPixels(await elements(file)));
  });

  it('decodes a YBR JPEG baseline colour image to RGB and says so', async () => {
    const sc = (await secondaryCaptureRgb(path.join(root, 'sc'), { rows: 64, cols: 64 })).files[0];
    const { file } = await compress(sc, 'jpeg-baseline', path.join(root, 'sc-jpeg.dcm'), { keepSopInstanceUid: true });
    const out = await transcodeTo(fs.readFileSync(file), TransferSyntax.ImplicitVRLittleEndian);
    const d = parsePart10(out);
    expect(d.string('x00280004')).toBe('RGB');
    expect(d.uint16('x00280006')).toBe(0);
    expect(d.elements.x7fe00010.length).toBe(64 * 64 * 3);
    expect((await dcmdump([write('sc-native.dcm', out)])).code).toBe(0);
  });
});
