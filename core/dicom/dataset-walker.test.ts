import { describe, expect, it } from 'vitest';
import dcmjs from 'dcmjs';
import { DatasetWalker } from './dataset-walker.ts';
import { readIndexedAttributes } from './indexed-attributes.ts';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

function encode(natural: Record<string, unknown>, transferSyntaxUid: string): Buffer {
  const meta = {
    TransferSyntaxUID: transferSyntaxUid,
    MediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
    MediaStorageSOPInstanceUID: '1.2.3',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(natural);
  const part10 = Buffer.from(dict.write());
  return part10.subarray(144 + part10.readUInt32LE(140));
}

const sample = {
  SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
  SOPInstanceUID: '1.2.3.4',
  StudyInstanceUID: '1.2.3',
  SeriesInstanceUID: '1.2.3.5',
  PatientName: 'Müller^Hans',
  SpecificCharacterSet: 'ISO_IR 192',
  PatientID: 'P1',
  Modality: 'OT',
  Rows: 2,
  Columns: 2,
  ReferencedSeriesSequence: [{ SeriesInstanceUID: '9.8.7', ReferencedInstanceSequence: [{ ReferencedSOPInstanceUID: '9.8.7.1' }] }],
};

function walkInChunks(bytes: Buffer, chunkSize: number, options = { explicitVr: true, littleEndian: true }) {
  const walker = new DatasetWalker(options);
  for (let i = 0; i < bytes.length; i += chunkSize) walker.push(bytes.subarray(i, i + chunkSize));
  return walker.end();
}

describe('DatasetWalker', () => {
  for (const [name, ts, explicitVr] of [
    ['explicit VR little endian', '1.2.840.10008.1.2.1', true],
    ['implicit VR little endian', '1.2.840.10008.1.2', false],
  ] as const) {
    it(`captures top-level attributes of ${name} whatever the chunking`, () => {
      const bytes = encode(sample, ts);
      for (const size of [1, 3, 7, 64, bytes.length]) {
        const attributes = readIndexedAttributes(walkInChunks(bytes, size, { explicitVr, littleEndian: true }), true);
        expect(attributes).toMatchObject({
          SOPInstanceUID: '1.2.3.4',
          StudyInstanceUID: '1.2.3',
          PatientName: 'Müller^Hans',
          PatientID: 'P1',
          Rows: '2',
        });
      }
    });
  }

  it('walks undefined-length sequences and items', () => {
    // (0008,1115) SQ undefined length, one undefined-length item holding (0020,000E) UI.
    const uid = Buffer.from('1.2\0', 'latin1');
    const element = Buffer.concat([Buffer.from([0x20, 0x00, 0x0e, 0x00]), Buffer.from('UI'), Buffer.from([uid.length, 0]), uid]);
    const bytes = Buffer.concat([
      Buffer.from([0x08, 0x00, 0x15, 0x11]),
      Buffer.from('SQ'),
      Buffer.from([0, 0, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]),
      element,
      Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]),
      Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]),
      Buffer.from([0x20, 0x00, 0x0d, 0x00]),
      Buffer.from('UI'),
      Buffer.from([4, 0]),
      Buffer.from('1.23'),
    ]);
    const elements = walkInChunks(bytes, 5);
    expect(elements.get(0x0020000d)?.value.toString()).toBe('1.23');
    expect(elements.has(0x0020000e)).toBe(false);
  });

  it('walks encapsulated pixel data', () => {
    const bytes = Buffer.concat([
      Buffer.from([0xe0, 0x7f, 0x10, 0x00]),
      Buffer.from('OB'),
      Buffer.from([0, 0, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0]),
      Buffer.from([0xfe, 0xff, 0x00, 0xe0, 4, 0, 0, 0]),
      Buffer.from([1, 2, 3, 4]),
      Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]),
    ]);
    expect(() => walkInChunks(bytes, 3)).not.toThrow();
    expect(() => walkInChunks(bytes.subarray(0, bytes.length - 8), 3)).toThrow(/never delimited/);
  });

  it('refuses a truncated dataset with the element it ended in', () => {
    const bytes = encode(sample, '1.2.840.10008.1.2.1');
    const cut = bytes.subarray(0, bytes.length - 3);
    expect(() => walkInChunks(cut, 16)).toThrow(/DF_ERR_DATASET_MALFORMED: dataset ends inside the value of \(7FE0,0010\)|ends inside/);
  });

  it('refuses garbage: invalid VR and out-of-order tags', () => {
    const bad = Buffer.from([0x08, 0x00, 0x16, 0x00, 0x01, 0x02, 0x00, 0x00]);
    expect(() => walkInChunks(bad, 8)).toThrow(/invalid VR/);
    const bytes = encode(sample, '1.2.840.10008.1.2.1');
    expect(() => walkInChunks(Buffer.concat([bytes, bytes]), 64)).toThrow(/out of order/);
  });
});
