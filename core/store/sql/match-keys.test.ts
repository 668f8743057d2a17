// The index's match keys narrow C-FIND in SQL; the matcher (core/query/match.ts) still decides.
// Whatever the SQL prefilter keeps, the answer must be exactly the matcher's over every row:
// wildcards (`*`, `?`), `%` and `_` that SQL must read as characters, case, padding, empty and
// several values, person names with several groups, legacy dates, on both back ends.
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { openTestIndexDatabase } from '../../../test/helpers/test-index.ts';
import { newUid } from '../../../test/fixtures/builder.ts';
import { parseIdentifier, type ParsedQuery } from '../../query/identifier.ts';
import { hierarchyFilterOf, matchesRow } from '../../query/match.ts';
import { indexFilterOf, OPAQUE_KEY } from '../../query/match-keys.ts';
import type { Attributes, HierarchyFilter, IndexStore } from '../index-store.ts';
import { SqlIndex } from './sql-index.ts';
import { prefixUpperBound } from './match-keys.ts';

const open: SqlIndex[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.close()));
});

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

/** One study per entry, one series and one instance each; unset attributes are left out. */
const studies: Attributes[] = [
  {
    PatientName: 'Doe^John',
    PatientID: 'P1',
    StudyDate: '20240105',
    StudyTime: '0930',
    AccessionNumber: 'A1',
    StudyID: 'S1',
    Modality: 'CT',
    SeriesNumber: '1',
  },
  {
    PatientName: 'DOE^JANE',
    PatientID: 'P1 ',
    StudyDate: '2024.01.07',
    StudyTime: '1900',
    AccessionNumber: 'a1',
    StudyID: 's1',
    Modality: 'PT',
    SeriesNumber: '01',
  },
  {
    PatientName: 'doe',
    PatientID: 'p1',
    StudyDate: '20231231',
    StudyTime: '235959',
    AccessionNumber: 'A%1',
    Modality: 'MR',
    SeriesNumber: ' 2',
  },
  {
    PatientName: 'Smith ^ John ',
    PatientID: 'P%1',
    StudyDate: '',
    AccessionNumber: 'A_1',
    StudyID: 'S%',
    Modality: ' CT',
    SeriesNumber: '',
  },
  { PatientName: 'A%B^C', PatientID: 'P_1', StudyDate: 'bad', AccessionNumber: 'AX1', StudyID: 'S_', Modality: '', SeriesNumber: 'x' },
  {
    PatientName: 'A_B^C',
    PatientID: 'P1\\P2',
    StudyDate: '20240101\\20240301',
    AccessionNumber: 'A1\\B1',
    Modality: 'CT\\PT',
    SeriesNumber: '3',
  },
  { PatientName: 'Yamada^Tarou=山田^太郎=やまだ^たろう', PatientID: 'PY', StudyDate: '20240131', StudyTime: '1800', AccessionNumber: '' },
  { PatientName: 'X\\Y', PatientID: '', StudyDate: '20240201' },
  { PatientName: '', PatientID: 'EMPTY-NAME', StudyDate: '20240115', Modality: 'OT' },
  { PatientName: 'Dö^Zoë', PatientID: 'PÖ', StudyDate: '20240110', AccessionNumber: 'Ä1', Modality: 'SR' },
  { PatientID: 'NO-NAME', StudyDate: '20240120', Modality: 'CT' },
];

async function fileStudies(index: IndexStore): Promise<void> {
  const now = new Date().toISOString();
  for (const [i, a] of studies.entries()) {
    const attributes: Attributes = {
      ...a,
      StudyInstanceUID: newUid(),
      SeriesInstanceUID: newUid(),
      SOPInstanceUID: newUid(),
      SOPClassUID: CT_IMAGE_STORAGE,
      // Patients are told apart by ID; these have their own even where the IDs look alike.
      ...(a.PatientID === undefined || a.PatientID === '' ? { PatientBirthDate: `1960010${i}` } : {}),
    };
    const recorded = await index.recordReceived(
      {
        objectId: `o-${i}`,
        path: `o/${i}.dcm`,
        size: 1,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        sopClassUid: CT_IMAGE_STORAGE,
        sopInstanceUid: attributes.SOPInstanceUID,
        attributes,
        source: 'import',
        database: 'Q',
        createdBy: 'test',
        receivedAt: now,
      },
      'keep-first',
    );
    await index.fileInstance(
      'Q',
      {
        objectId: recorded.objectId,
        sopClassUid: CT_IMAGE_STORAGE,
        sopInstanceUid: attributes.SOPInstanceUID,
        attributes,
        createdBy: 'test',
        createdAt: now,
        source: 'import',
        arrivalId: recorded.arrivalId,
      },
      'keep-first',
    );
  }
}

type Level = 'PATIENT' | 'STUDY' | 'SERIES';

/** The matcher's answer over the rows a filter reads: the keys of the matches, and how many rows were read. */
async function answer(index: IndexStore, parsed: ParsedQuery, filter: HierarchyFilter): Promise<{ matched: string[]; read: number }> {
  const level = parsed.level as Level;
  if (level === 'PATIENT') {
    const rows = await index.patients('Q', filter);
    return {
      matched: rows
        .filter((p) => matchesRow(parsed, { patient: p.attributes }))
        .map((p) => p.key!)
        .sort(),
      read: rows.length,
    };
  }
  if (level === 'STUDY') {
    const rows = await index.studies('Q', filter);
    const matched = rows.filter((s) =>
      matchesRow(parsed, { patient: s.patient, study: { ...s.study, ModalitiesInStudy: s.modalitiesInStudy.join('\\') } }),
    );
    return { matched: matched.map((s) => s.key!).sort(), read: rows.length };
  }
  const rows = await index.series('Q', filter);
  return {
    matched: rows
      .filter((s) => matchesRow(parsed, { patient: s.patient, study: s.study, series: s.series }))
      .map((s) => s.key!)
      .sort(),
    read: rows.length,
  };
}

const queries: [Level, Record<string, string>, { combinedDateTime?: boolean }?][] = [
  ['STUDY', { PatientName: 'doe*' }],
  ['STUDY', { PatientName: 'DOE^J*' }],
  ['STUDY', { PatientName: 'D?E*' }],
  ['STUDY', { PatientName: 'Doe^John' }],
  ['STUDY', { PatientName: 'doe^*' }],
  ['STUDY', { PatientName: 'A%B*' }],
  ['STUDY', { PatientName: 'A_B*' }],
  ['STUDY', { PatientName: 'a%b^c' }],
  ['STUDY', { PatientName: '*john*' }],
  ['STUDY', { PatientName: 'smith^john' }],
  ['STUDY', { PatientName: '山田*' }],
  ['STUDY', { PatientName: 'Yamada^Tarou=山田^太郎' }],
  ['STUDY', { PatientName: 'X' }],
  ['STUDY', { PatientName: 'dö*' }],
  ['STUDY', { PatientName: 'Doe^John\\A_B^C' }],
  ['STUDY', { PatientID: 'P1' }],
  ['STUDY', { PatientID: 'P%1' }],
  ['STUDY', { PatientID: 'P_1' }],
  ['STUDY', { PatientID: 'P?' }],
  ['STUDY', { PatientID: 'P*' }],
  ['STUDY', { PatientID: 'P2' }],
  ['STUDY', { PatientID: 'p1\\PY' }],
  ['STUDY', { StudyDate: '20240101-20240131' }],
  ['STUDY', { StudyDate: '20240107' }],
  ['STUDY', { StudyDate: '-20231231' }],
  ['STUDY', { StudyDate: '20240301-' }],
  ['STUDY', { StudyDate: '20240105-20240131', StudyTime: '1000-1800' }, { combinedDateTime: true }],
  ['STUDY', { StudyDate: '20240105-20240131', StudyTime: '1000-1800' }],
  ['STUDY', { AccessionNumber: 'A%1' }],
  ['STUDY', { AccessionNumber: 'A_*' }],
  ['STUDY', { AccessionNumber: 'A?1' }],
  ['STUDY', { AccessionNumber: 'a1' }],
  ['STUDY', { AccessionNumber: 'B1' }],
  ['STUDY', { AccessionNumber: 'Ä*' }],
  ['STUDY', { StudyID: 'S%' }],
  ['STUDY', { StudyID: 'S_' }],
  ['STUDY', { StudyID: 'S?' }],
  ['STUDY', { ModalitiesInStudy: 'CT' }],
  ['STUDY', { ModalitiesInStudy: 'PT\\MR' }],
  ['STUDY', { ModalitiesInStudy: 'C*' }],
  ['STUDY', { PatientName: 'doe*', StudyDate: '20240101-20240131', PatientID: 'P1' }],
  ['SERIES', { Modality: 'CT' }],
  ['SERIES', { Modality: 'P?' }],
  ['SERIES', { SeriesNumber: '1' }],
  ['SERIES', { SeriesNumber: '2' }],
  ['SERIES', { SeriesNumber: '3', Modality: 'PT' }],
  ['PATIENT', { PatientName: 'doe*' }],
  ['PATIENT', { PatientID: 'P1' }],
];

describe('match keys: the SQL prefilter and the matcher agree', () => {
  it('every query answers exactly what the matcher answers over all rows, and reads fewer rows where a key applies', async () => {
    const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
    open.push(index);
    await fileStudies(index);
    let narrowed = 0;
    for (const [level, keys, options] of queries) {
      const parsed = parseIdentifier({ QueryRetrieveLevel: level, ...keys }, level === 'PATIENT' ? 'PATIENT' : 'STUDY', options);
      const what = `${level} ${JSON.stringify(keys)}`;
      const filter = indexFilterOf(parsed);
      const prefiltered = await answer(index, parsed, filter);
      const everyRow = await answer(index, parsed, hierarchyFilterOf(parsed));
      expect(prefiltered.matched, what).toEqual(everyRow.matched);
      if (prefiltered.read < everyRow.read) narrowed++;
    }
    // Most of these queries name a keyed attribute: the index reads fewer rows for them.
    expect(narrowed).toBeGreaterThan(queries.length / 2);
  });

  it('rows keyed before the columns existed are answered alike, before and after their keys are computed', async () => {
    const db = await openTestIndexDatabase(tempDir());
    const index = new SqlIndex(db);
    open.push(index);
    await fileStudies(index);
    const parsedAll = queries.map(([level, keys, options]) =>
      parseIdentifier({ QueryRetrieveLevel: level, ...keys }, level === 'PATIENT' ? 'PATIENT' : 'STUDY', options),
    );
    const expected = await Promise.all(parsedAll.map((p) => answer(index, p, hierarchyFilterOf(p))));
    // As the migration leaves rows filed before it: every key OPAQUE, pending.
    await db.run('UPDATE patients SET k_patient_id = ?, k_patient_name = ?, keys_pending = 1', OPAQUE_KEY, OPAQUE_KEY);
    await db.run(
      'UPDATE studies SET k_study_date = ?, k_accession_number = ?, k_study_id = ?, keys_pending = 1',
      OPAQUE_KEY,
      OPAQUE_KEY,
      OPAQUE_KEY,
    );
    await db.run('UPDATE series SET k_modality = ?, k_series_number = ?, keys_pending = 1', OPAQUE_KEY, OPAQUE_KEY);
    for (const [i, p] of parsedAll.entries()) expect((await answer(index, p, indexFilterOf(p))).matched).toEqual(expected[i].matched);
    const patients = (await index.patients('Q', {})).length;
    expect(await index.keyPendingRows({ batchRows: 4 })).toBe(patients + 2 * studies.length);
    expect(await index.keyPendingRows()).toBe(0);
    for (const [i, p] of parsedAll.entries()) expect((await answer(index, p, indexFilterOf(p))).matched).toEqual(expected[i].matched);
  });

  it('a prefix range ends after every string with that prefix', () => {
    expect(prefixUpperBound('doe')).toBe('dof');
    expect(prefixUpperBound('a\u{10FFFF}')).toBe('b');
    expect(prefixUpperBound('\u{D7FF}')).toBe('\u{E000}');
    expect(prefixUpperBound('\u{10FFFF}')).toBeUndefined();
  });
});
