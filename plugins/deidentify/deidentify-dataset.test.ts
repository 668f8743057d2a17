// The profile applied to data sets built by hand: structured content, options, repeating groups.
import { describe, expect, it } from 'vitest';
import { DatasetDeidentifier, shiftDate, shiftDateTime, uidFor, type DcmjsDict } from './deidentify-dataset.ts';
import { Profile, type ProfileOptions } from './profile.ts';

const PET_SAFE: ProfileOptions = {
  retainSafePrivate: false,
  retainUids: false,
  retainDeviceIdentity: true,
  retainInstitutionIdentity: false,
  retainPatientCharacteristics: true,
  longitudinalTemporal: 'modified',
  cleanDescriptors: true,
  cleanStructuredContent: true,
};
const SECRET = 'ab'.repeat(32);
const el = (vr: string, ...Value: unknown[]) => ({ vr, Value });

function srLike(): DcmjsDict {
  return {
    '00080016': el('UI', '1.2.840.10008.5.1.4.1.1.88.33'),
    '00080018': el('UI', '1.2.3.4.5'),
    '00080020': el('DA', '20240315'),
    '00080021': el('DA', '20240315'),
    '0008002A': el('DT', '20240315101500.5+0100'),
    '00100010': el('PN', { Alphabetic: 'Doe^Johnathan' }),
    '00100020': el('LO', 'PID12345'),
    '00100030': el('DA', '19700101'),
    '00081111': el('SQ', { '00081150': el('UI', '1.2.840.10008.3.1.2.3.3'), '00081155': el('UI', '1.2.3.9') }),
    '0040A730': el('SQ', {
      '0040A040': el('CS', 'TEXT'),
      '0040A160': el('UT', 'Johnathan Doe (PID12345) has a lesion'),
      '0040A123': el('PN', { Alphabetic: 'Smith^Anna' }),
      '0040A124': el('UI', '1.2.3.77'),
      '0040A120': el('DT', '20240316083000'),
      '0040A730': el('SQ', { '0040A040': el('CS', 'TEXT'), '0040A160': el('UT', 'seen again: Doe') }),
    }),
    '60000010': el('US', 4),
    '60003000': el('OW', new ArrayBuffer(2)),
    '00090010': el('LO', 'VENDOR'),
    '00091001': el('LO', 'Doe^Johnathan'),
  };
}

function run(dict: DcmjsDict, options: Partial<ProfileOptions> = {}, dateOffsetDays: number | undefined = -10): DcmjsDict {
  const profile = new Profile({ ...PET_SAFE, ...options });
  new DatasetDeidentifier({
    profile,
    uid: (u) => uidFor(SECRET, u),
    dateOffsetDays: profile.options.longitudinalTemporal === 'modified' ? dateOffsetDays : undefined,
    pseudonym: 'ANONTEST',
    scrub: { identifiers: ['PID12345', '19700101'], names: ['Doe^Johnathan', 'Doe Johnathan', 'Doe', 'Johnathan'] },
    safePrivate: [],
  }).apply(dict);
  return dict;
}

describe('DatasetDeidentifier', () => {
  it('cleans structured content: names dummied, text cleaned, dates shifted, UIDs replaced, at every depth', () => {
    const d = run(srLike());
    const item = (d['0040A730'].Value as DcmjsDict[])[0];
    expect(item['0040A160'].Value).toEqual(['has a lesion']);
    expect(item['0040A123'].Value).toEqual([{ Alphabetic: 'ANONYMOUS^' }]);
    expect(item['0040A124'].Value).toEqual([uidFor(SECRET, '1.2.3.77')]);
    expect(item['0040A120'].Value).toEqual(['20240306083000']);
    expect((item['0040A730'].Value as DcmjsDict[])[0]['0040A160'].Value).toEqual(['seen again:']);
    expect(d['0008002A'].Value).toEqual(['20240305101500.5+0100']);
    const ref = (d['00081111'].Value as DcmjsDict[])[0];
    expect(ref['00081150'].Value).toEqual(['1.2.840.10008.3.1.2.3.3']); // a class UID stays
    expect(ref['00081155'].Value).toEqual([uidFor(SECRET, '1.2.3.9')]);
    expect(d['00080018'].Value).toEqual([uidFor(SECRET, '1.2.3.4.5')]);
    expect(d['00080016'].Value).toEqual(['1.2.840.10008.5.1.4.1.1.88.33']);
    expect(Object.keys(d).filter((k) => k.startsWith('6000') || k.startsWith('0009'))).toEqual([]);
    expect(d['00100010'].Value).toEqual([{ Alphabetic: 'ANONTEST^' }]);
    expect(d['00100020'].Value).toEqual(['ANONTEST']);
    expect(d['00100030'].Value).toEqual([]);
  });

  it('follows the basic profile where an option is off', () => {
    const d = run(srLike(), { longitudinalTemporal: 'remove', cleanStructuredContent: false, retainUids: true });
    expect(d['00080020'].Value).toEqual([]); // Study Date: Z
    expect(d['00080021'].Value).toEqual(['19000101']); // Series Date: X/D → D
    expect(d['0008002A'].Value).toEqual(['19000101000000']); // Acquisition DateTime: X/Z/D → D
    expect(d['00080018'].Value).toEqual(['1.2.3.4.5']); // Retain UIDs
    // Content Sequence: D without Clean Structured Content: walked through the table, names dummied.
    const item = (d['0040A730'].Value as DcmjsDict[])[0];
    expect(item['0040A123'].Value).toEqual([{ Alphabetic: 'ANONYMOUS^' }]);
  });

  it('keeps dates with Full Dates, and shifts dates across month and year ends', () => {
    expect(run(srLike(), { longitudinalTemporal: 'full' })['00080020'].Value).toEqual(['20240315']);
    expect(shiftDate('20240301', -1)).toBe('20240229');
    expect(shiftDate('20250101', -365)).toBe('20240102');
    expect(shiftDate('2024', -1)).toBeUndefined();
    expect(shiftDateTime('20240101000000', -1)).toBe('20231231000000');
    expect(shiftDateTime('2024', -1)).toBeUndefined();
  });
});
