/**
 * Hostile Part 10 files for `dicomflow import` and the watch folder: the DIMSE dataset cases
 * wrapped in a file meta header, plus broken headers (no DICM, hostile group lengths, odd
 * transfer syntaxes) and empty or random files.
 */
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../helpers/raw-scu.ts';
import { CT_IMAGE_STORAGE, caseIds, seedDataset } from './corpus.ts';
import { element } from './dicom-bytes.ts';
import { dimseCase } from './dimse-cases.ts';
import { mutate } from './mutate.ts';
import { Random } from './random.ts';

export interface FileCase {
  seed: number;
  index: number;
  family: string;
  what: string;
  name: string;
  bytes: Buffer;
  sopInstanceUid: string;
  expect: 'fail' | 'succeed' | 'either';
}

// File case indexes live apart from DIMSE ones, so their UIDs never collide.
const FILE_INDEX_BASE = 5_000_000;

export function part10(sopInstanceUid: string, transferSyntaxUid: string, dataset: Buffer, groupLength?: number): Buffer {
  const body = Buffer.concat([
    element(0x00020001, 'OB', Buffer.from([0, 1])),
    element(0x00020002, 'UI', CT_IMAGE_STORAGE),
    element(0x00020003, 'UI', sopInstanceUid),
    element(0x00020010, 'UI', transferSyntaxUid),
    element(0x00020012, 'UI', '2.25.1234567'),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE((groupLength ?? body.length) >>> 0);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), element(0x00020000, 'UL', length), body, dataset]);
}

const ODD_NAMES = ['plain.dcm', 'no-extension', 'with space.dcm', 'ünïcode.dcm', '-leading-dash', 'a.b.c.d', 'IM000001'];

export function fileCase(seed: number, n: number): FileCase {
  const index = FILE_INDEX_BASE + n;
  const r = Random.forCase(seed, index);
  const ids = caseIds(seed, index);
  const name = `${String(n).padStart(5, '0')}-${r.pick(ODD_NAMES)}`;
  const base = { seed, index, name, sopInstanceUid: ids.sopInstanceUid };
  const valid = part10(ids.sopInstanceUid, EXPLICIT_VR_LITTLE_ENDIAN, seedDataset(ids));
  switch (r.int(0, 7)) {
    case 0:
    case 1:
    case 2: {
      // A DIMSE store case's dataset, in a file.
      const c = dimseCase(seed, index);
      if (c.kind !== 'store') return { ...base, family: 'file-valid', what: 'a valid file', bytes: valid, expect: 'succeed' };
      const ts = c.family === 'store-wrong-encoding' ? IMPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN;
      const expect = c.family === 'store-never-last' ? 'succeed' : c.expect;
      return {
        ...base,
        family: `file-${c.family.replace(/^store-/, '')}`,
        what: c.what,
        sopInstanceUid: c.sopInstanceUid,
        bytes: part10(c.sopInstanceUid, ts, c.dataset),
        expect,
      };
    }
    case 3: {
      const m = mutate(r, valid, { from: 128 });
      return { ...base, family: 'file-header-mutated', what: m.what, bytes: m.bytes, expect: 'either' };
    }
    case 4: {
      const length = r.hostileLength(100);
      return {
        ...base,
        family: 'file-meta-length',
        what: `meta group length 0x${length.toString(16)}`,
        bytes: part10(ids.sopInstanceUid, EXPLICIT_VR_LITTLE_ENDIAN, seedDataset(ids), length),
        expect: 'either',
      };
    }
    case 5: {
      const ts = r.pick(['../../x', '', '1.2.840.10008.1.2.4.50', '1.2.3.4.5.6.7', 'x'.repeat(200)]);
      return {
        ...base,
        family: 'file-transfer-syntax',
        what: `transfer syntax "${ts.slice(0, 20)}"`,
        bytes: part10(ids.sopInstanceUid, ts, seedDataset(ids)),
        expect: 'either',
      };
    }
    case 6: {
      const bytes = r.pick([
        Buffer.alloc(0),
        Buffer.from('DICM'),
        Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')]),
        valid.subarray(132),
        Buffer.from('not dicom at all\n'),
      ]);
      return { ...base, family: 'file-not-part10', what: `${bytes.length} bytes, no usable header`, bytes, expect: 'fail' };
    }
    default: {
      const bytes = r.bytes(r.int(1, 5000));
      return { ...base, family: 'file-garbage', what: `${bytes.length} random bytes`, bytes, expect: 'fail' };
    }
  }
}
