// The dataset walker against the fuzzer's hostile structures, without sockets: what receive must
// refuse (lengths that lie about what holds them, unclosed sequences) and what it must keep.
import { describe, expect, it } from 'vitest';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { caseIds } from './corpus.ts';
import { element, elementHeader, FUZZ_SEQUENCE, instanceDataset, item, nestedSequences, sequence } from './dicom-bytes.ts';

function walk(bytes: Buffer, chunk = bytes.length) {
  const walker = new DatasetWalker({ explicitVr: true, littleEndian: true });
  for (let i = 0; i < bytes.length; i += chunk) walker.push(bytes.subarray(i, i + chunk));
  return walker.end();
}

const ids = caseIds(7, 1);
const leaf = element(0x00081150, 'UI', '1.2.840.10008.5.1.4.1.1.2');

describe('DatasetWalker on hostile structures', () => {
  it('keeps valid defined- and undefined-length nesting, empty sequences and items, in any chunking', () => {
    const middle = sequence(FUZZ_SEQUENCE, [
      item(leaf),
      item(Buffer.alloc(0)),
      item(sequence(0x00081140, [item(leaf, true)], true)),
      item(sequence(0x00081140, [])),
    ]);
    for (const chunk of [1, 5, 64, 100000]) {
      expect(walk(instanceDataset(ids, { middle }), chunk).get(0x00080018)?.value.toString('latin1').replace(/\0$/, '')).toBe(
        ids.sopInstanceUid,
      );
    }
    expect(() => walk(instanceDataset(ids, { middle: nestedSequences(2000, false) }))).not.toThrow();
    expect(() => walk(instanceDataset(ids, { middle: nestedSequences(30000, true) }))).not.toThrow();
  });

  it('refuses an item longer than its defined-length sequence', () => {
    const lying = item(leaf);
    lying.writeUInt32LE(lying.length + 100, 4);
    expect(() => walk(instanceDataset(ids, { middle: sequence(FUZZ_SEQUENCE, [lying]) }))).toThrow(
      /DF_ERR_DATASET_MALFORMED: element \(FFFE,E000\) declares .* past the end/,
    );
  });

  it('refuses an element reaching past the end of its item', () => {
    const inner = Buffer.concat([elementHeader(0x00081150, 'UI', 40), Buffer.alloc(8)]);
    expect(() => walk(instanceDataset(ids, { middle: sequence(FUZZ_SEQUENCE, [item(inner)]) }))).toThrow(
      /past the end of the item or sequence/,
    );
  });

  it('refuses undefined-length nesting that is never closed', () => {
    expect(() => walk(instanceDataset(ids, { middle: nestedSequences(5000, true, false) }))).toThrow(/never delimited/);
  });

  it('refuses a dataset cut inside a defined-length sequence', () => {
    const bytes = Buffer.concat([instanceDataset(ids).subarray(0, 20), sequence(FUZZ_SEQUENCE, [item(leaf)]).subarray(0, 30)]);
    expect(() => walk(bytes)).toThrow(/DF_ERR_DATASET_MALFORMED/);
  });
});
