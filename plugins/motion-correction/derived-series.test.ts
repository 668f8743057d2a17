import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, describe, expect, it } from 'vitest';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { petSeries } from '../../test/fixtures/builder.ts';
import { patchedInstance, rewrittenInstance, type DerivedSeriesSpec, type DerivedSlice } from './derived-series.ts';

const { DicomMessage } = dcmjs.data as unknown as {
  DicomMessage: {
    readFile(buffer: ArrayBuffer): {
      meta: Record<string, { vr: string; Value?: unknown[] }>;
      dict: Record<string, { vr: string; Value?: unknown[] }>;
    };
  };
};

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-derived-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function read(bytes: Buffer) {
  return DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}

/** An element's value as comparable JSON: sequences item by item, binary values as bytes. */
function comparable(element: { vr: string; Value?: unknown[] } | undefined): unknown {
  if (element === undefined) return undefined;
  return (element.Value ?? []).map((v) =>
    v instanceof ArrayBuffer
      ? Array.from(new Uint8Array(v))
      : typeof v === 'object' && v !== null && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v as Record<string, { vr: string; Value?: unknown[] }>).map(([tag, e]) => [tag, comparable(e)]))
        : v,
  );
}

describe('derived instances written from the source bytes', () => {
  const spec: DerivedSeriesSpec = {
    seriesInstanceUid: '2.25.1001',
    uidSeed: 'test',
    seriesNumber: 1004,
    seriesDescription: 'Dynamic brain MoCo',
    derivationDescription: 'Rigid (6 DOF) motion correction',
    sourceSeriesInstanceUid: '',
    outDir: root,
  };
  const pixels = Int16Array.from({ length: 16 * 16 }, (_, i) => 7 * i - 900);

  for (const transferSyntaxUid of [EXPLICIT_VR_LE, IMPLICIT_VR_LE]) {
    it(`carry the same attributes as a dcmjs rewrite, in the source's encoding (${transferSyntaxUid})`, async () => {
      const series = await petSeries(path.join(root, transferSyntaxUid), {
        rows: 16,
        cols: 16,
        slices: 3,
        frameDurationsSec: [30, 60],
        transferSyntaxUid,
        withPrivateTags: true,
      });
      const source = fs.readFileSync(series.files[4]);
      const slice: DerivedSlice = {
        sopInstanceUid: '2.25.77',
        sourceSopInstanceUid: series.sopInstanceUids[4],
        date: '20261207',
        time: '151500',
        pixels,
        slope: 0.012345678,
      };
      const derived = { ...spec, sourceSeriesInstanceUid: series.seriesInstanceUid };
      const patched = read(patchedInstance(source, derived, slice)!);
      const rewritten = read(rewrittenInstance(source, derived, slice));
      const original = read(source);

      // The patched instance keeps the source's transfer syntax and character set (dcmjs
      // re-encodes every string as UTF-8 and writes Explicit VR).
      expect(patched.meta['00020010'].Value).toEqual([transferSyntaxUid]);
      expect(patched.meta['00020003'].Value).toEqual(['2.25.77']);
      expect(comparable(patched.dict['00080005'])).toEqual(comparable(original.dict['00080005']));
      const tags = new Set([...Object.keys(patched.dict), ...Object.keys(rewritten.dict)]);
      tags.delete('00080005');
      for (const tag of tags) expect(comparable(patched.dict[tag]), tag).toEqual(comparable(rewritten.dict[tag]));
      expect(patched.dict['00080008'].Value?.slice(0, 2)).toEqual(['DERIVED', 'PRIMARY']);
      expect(patched.dict['0020000E'].Value).toEqual(['2.25.1001']);
      expect(Array.from(new Int16Array(patched.dict['7FE00010'].Value?.[0] as ArrayBuffer))).toEqual(Array.from(pixels));
      // Everything the derivation does not set is the source's, private tags included.
      for (const tag of Object.keys(original.dict).filter((t) => t.startsWith('0009') || t.startsWith('0054')))
        expect(comparable(patched.dict[tag]), tag).toEqual(comparable(original.dict[tag]));
    });
  }
});
