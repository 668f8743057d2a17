// C-FIND SCP against DCMTK's findscu: a fixed set of studies goes in with storescu, then each
// PS3.4 C.2.2.2 matching rule and computed key is asked for the way a viewer or PACS would.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ctSeries,
  mrSeries,
  newUid,
  petSeries,
  secondaryCaptureRgb,
  type BuiltSeries,
  type PatientStudyOptions,
  type PetOptions,
} from '../fixtures/builder.ts';
import { findscu, hasTool, parseFindscuResponses, storescu, type DumpDataset } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const SMALL = { rows: 64, cols: 64 } as const;

const patients = {
  john: { patientId: 'FIND-P1', patientName: 'DOE^JOHN' },
  jane: { patientId: 'FIND-P2', patientName: 'Doe^Jane' },
  anna: { patientId: 'FIND-P3', patientName: 'SMITH^ANNA' },
  // PS3.3 C.12.1.1.2: ISO_IR 192 is UTF-8; the builder's dcmjs writes strings as UTF-8.
  hans: { patientId: 'FIND-P4', patientName: 'MÜLLER^HANS', extra: { SpecificCharacterSet: 'ISO_IR 192' } },
} satisfies Record<string, PatientStudyOptions>;

interface StudyFixture {
  uid: string;
  date: string;
  time: string;
  description: string;
  accessionNumber: string;
  series: BuiltSeries[];
}

/** Every response holds exactly the requested keys and the level (PS3.4 C.4.1.1.3.2), SpecificCharacterSet only when a value needs it. */
function expectExactKeys(responses: DumpDataset[], requested: readonly string[]): void {
  const nonAscii = responses.some((r) => Object.values(r).some((v) => typeof v === 'string' && /[^\x00-\x7f]/.test(v)));
  for (const response of responses) {
    const keys = new Set(Object.keys(response));
    const expected = new Set([...requested, 'QueryRetrieveLevel']);
    if (nonAscii || requested.includes('SpecificCharacterSet')) keys.delete('SpecificCharacterSet');
    expected.delete('SpecificCharacterSet');
    expect([...keys].sort()).toEqual([...expected].sort());
  }
}

const keyName = (key: string): string => key.split('=')[0];
const values = (text: DumpDataset[string] | undefined): string[] => (typeof text === 'string' && text !== '' ? text.split('\\') : []);

describe.skipIf(!hasTool('findscu') || !hasTool('storescu'))('C-FIND SCP with findscu', () => {
  let server: Server;
  let fixtureDir: string;
  const studies = {} as Record<'chestCt' | 'brainMr' | 'abdomenCt' | 'wholeBodyPet' | 'kneeMr' | 'studyA' | 'oddUid', StudyFixture>;

  /** findscu -v: every response is logged with its identifier, and the final status by name. */
  async function find(model: 'study' | 'patient', keys: string[], options: { aeTitle?: string; debug?: boolean } = {}) {
    const args = [
      model === 'study' ? '-S' : '-P',
      options.debug ? '-d' : '-v',
      '-aet',
      'FINDTEST',
      '-aec',
      options.aeTitle ?? 'DICOMFLOW',
      ...keys.flatMap((key) => ['-k', key]),
      '127.0.0.1',
      String(server.dicomPort),
    ];
    const result = await findscu(args);
    expect(result.code, result.stderr).toBe(0);
    const log = `${result.stdout}${result.stderr}`;
    const final = /Received Final Find Response \(([^)]*)\)/.exec(log)?.[1];
    const statusCodes = [...log.matchAll(/DIMSE Status\s*:\s*0x([0-9a-f]{4})/gi)].map((m) => m[1].toLowerCase());
    return { responses: parseFindscuResponses(log), final, finalStatusCode: statusCodes.at(-1), log };
  }

  /** A successful query whose responses hold exactly the requested keys. */
  async function query(model: 'study' | 'patient', keys: string[], aeTitle?: string): Promise<DumpDataset[]> {
    const { responses, final, log } = await find(model, keys, { aeTitle });
    expect(final, log).toBe('Success');
    expectExactKeys(responses, keys.map(keyName));
    return responses;
  }

  const uidsOf = (responses: DumpDataset[], keyword = 'StudyInstanceUID'): string[] => responses.map((r) => r[keyword] as string).sort();
  const studyUids = (...names: (keyof typeof studies)[]): string[] => names.map((name) => studies[name].uid).sort();

  beforeAll(async () => {
    server = await startTestServer({
      databases: [{ name: 'Import' }, { name: 'StudyA', aeTitle: 'STUDYA' }, { name: 'Odd', aeTitle: 'ODDUIDS' }],
    });
    fixtureDir = tempDir('dicomflow-find-');

    async function study(
      name: keyof typeof studies,
      patient: PatientStudyOptions,
      fields: { date: string; time: string; description: string; accessionNumber: string },
      build: (dir: string, options: PatientStudyOptions) => Promise<BuiltSeries>[],
      uid = newUid(),
    ): Promise<void> {
      const options: PatientStudyOptions = {
        ...patient,
        studyUid: uid,
        studyDate: fields.date,
        studyTime: fields.time,
        studyDescription: fields.description,
        accessionNumber: fields.accessionNumber,
      };
      const series = await Promise.all(build(path.join(fixtureDir, name), options));
      studies[name] = { uid, ...fields, series };
    }
    const staticPet: PetOptions = { frameDurationsSec: [300], seriesType: 'STATIC' };

    await study(
      'chestCt',
      patients.john,
      { date: '20240105', time: '083000', description: 'CT CHEST', accessionNumber: 'A1001' },
      (dir, o) => [
        ctSeries(path.join(dir, 'ct'), { ...o, ...SMALL, slices: 4, seriesNumber: 1 }),
        petSeries(path.join(dir, 'pt'), { ...o, ...SMALL, ...staticPet, slices: 3, seriesNumber: 2 }),
      ],
    );
    await study(
      'brainMr',
      patients.john,
      { date: '20240220', time: '141500', description: 'MR BRAIN', accessionNumber: 'A1002' },
      (dir, o) => [mrSeries(path.join(dir, 'mr'), { ...o, ...SMALL, slices: 3, seriesNumber: 1 })],
    );
    await study(
      'abdomenCt',
      patients.jane,
      { date: '20240110', time: '101500', description: 'CT ABDOMEN', accessionNumber: 'A2001' },
      (dir, o) => [
        ctSeries(path.join(dir, 'ct'), { ...o, ...SMALL, slices: 2, seriesNumber: 1 }),
        secondaryCaptureRgb(path.join(dir, 'sc'), { ...o, ...SMALL, count: 1, seriesNumber: 2 }),
      ],
    );
    await study(
      'wholeBodyPet',
      patients.anna,
      { date: '20231231', time: '235900', description: 'PET WHOLEBODY', accessionNumber: 'A3001' },
      (dir, o) => [petSeries(path.join(dir, 'pt'), { ...o, ...SMALL, ...staticPet, slices: 2, seriesNumber: 1 })],
    );
    await study(
      'kneeMr',
      patients.hans,
      { date: '20240315', time: '120000', description: 'MR KNEE', accessionNumber: 'A4001' },
      (dir, o) => [mrSeries(path.join(dir, 'mr'), { ...o, ...SMALL, slices: 2, seriesNumber: 1 })],
    );
    // Goes to the StudyA database through its own called AE title.
    await study(
      'studyA',
      { patientId: 'FIND-A1', patientName: 'DOE^ARCHIE' },
      { date: '20240105', time: '090000', description: 'CT STUDY A', accessionNumber: 'A9001' },
      (dir, o) => [ctSeries(path.join(dir, 'ct'), { ...o, ...SMALL, slices: 2, seriesNumber: 1 })],
    );

    // Some modalities put letters in UIDs; dicomflow keeps such objects (no path is made from a UID).
    await study(
      'oddUid',
      { patientId: 'FIND-O1', patientName: 'ODD^UID' },
      { date: '20240105', time: '090000', description: 'ODD UID', accessionNumber: 'A9002' },
      (dir, o) => [ctSeries(path.join(dir, 'ct'), { ...o, ...SMALL, slices: 1, seriesNumber: 1 })],
      `${newUid()}.A1`,
    );

    const send = async (dirs: string[], aeTitle: string, expected: number) => {
      const result = await storescu([
        '-v',
        '+sd',
        '+r',
        '-aet',
        'FINDTEST',
        '-aec',
        aeTitle,
        '127.0.0.1',
        String(server.dicomPort),
        ...dirs,
      ]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr.match(/Received Store Response \(Success\)/g)?.length ?? 0).toBe(expected);
    };
    const importStudies = (['chestCt', 'brainMr', 'abdomenCt', 'wholeBodyPet', 'kneeMr'] as const).map((name) =>
      path.join(fixtureDir, name),
    );
    await send(importStudies, 'DICOMFLOW', 4 + 3 + 3 + 2 + 1 + 2 + 2);
    await send([path.join(fixtureDir, 'studyA')], 'STUDYA', 2);
    await send([path.join(fixtureDir, 'oddUid')], 'ODDUIDS', 1);
  });

  afterAll(async () => {
    await server?.close();
    if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
    if (server) await rm(server.dataDir, { recursive: true, force: true });
  });

  describe('Study Root, STUDY level', () => {
    const studyKeys = ['StudyInstanceUID', 'PatientName', 'PatientID', 'StudyDate', 'StudyTime', 'StudyDescription', 'AccessionNumber'];

    it('answers universal matching with every study and the stored values', async () => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', ...studyKeys]);
      expect(uidsOf(responses)).toEqual(studyUids('chestCt', 'brainMr', 'abdomenCt', 'wholeBodyPet', 'kneeMr'));
      const chest = responses.find((r) => r.StudyInstanceUID === studies.chestCt.uid);
      expect(chest).toMatchObject({
        QueryRetrieveLevel: 'STUDY',
        PatientName: 'DOE^JOHN',
        PatientID: 'FIND-P1',
        StudyDate: '20240105',
        StudyTime: '083000',
        StudyDescription: 'CT CHEST',
        AccessionNumber: 'A1001',
      });
    });

    it.each([
      ['doe*', ['chestCt', 'brainMr', 'abdomenCt']],
      ['DOE*', ['chestCt', 'brainMr', 'abdomenCt']],
      ['doe^jane', ['abdomenCt']],
      ['D?E^J*', ['chestCt', 'brainMr', 'abdomenCt']],
      ['*ANNA', ['wholeBodyPet']],
      ['smith^?nna', ['wholeBodyPet']],
      ['ROE*', []],
    ] as const)('matches PatientName %j without regard to case', async (pattern, expected) => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', `PatientName=${pattern}`, 'StudyInstanceUID']);
      expect(uidsOf(responses)).toEqual(studyUids(...expected));
    });

    it.each([
      ['CT*', ['chestCt', 'abdomenCt']],
      ['?R *', ['brainMr', 'kneeMr']],
      ['*BODY', ['wholeBodyPet']],
      ['MR BRAIN', ['brainMr']],
      // Only PN ignores case (PS3.4 C.2.2.2.1); a LO key is matched as written.
      ['ct*', []],
    ] as const)('matches StudyDescription %j', async (pattern, expected) => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', `StudyDescription=${pattern}`, 'StudyInstanceUID']);
      expect(uidsOf(responses)).toEqual(studyUids(...expected));
      for (const name of expected)
        expect(responses.find((r) => r.StudyInstanceUID === studies[name].uid)?.StudyDescription).toBe(studies[name].description);
    });

    it('matches a single PatientID value', async () => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', 'PatientID=FIND-P2', 'StudyInstanceUID', 'PatientName']);
      expect(uidsOf(responses)).toEqual(studyUids('abdomenCt'));
      expect(responses[0].PatientName).toBe('Doe^Jane');
    });

    it('matches a list of Study Instance UIDs', async () => {
      const responses = await query('study', [
        'QueryRetrieveLevel=STUDY',
        `StudyInstanceUID=${studies.chestCt.uid}\\${studies.wholeBodyPet.uid}`,
        'StudyDate',
      ]);
      expect(uidsOf(responses)).toEqual(studyUids('chestCt', 'wholeBodyPet'));
    });

    it.each([
      ['20240101-20240131', ['chestCt', 'abdomenCt']],
      ['20240201-', ['brainMr', 'kneeMr']],
      ['-20231231', ['wholeBodyPet']],
      ['20240110', ['abdomenCt']],
      ['20240105-20240110', ['chestCt', 'abdomenCt']],
      ['20230101-20231230', []],
    ] as const)('matches the StudyDate range %s', async (range, expected) => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', `StudyDate=${range}`, 'StudyInstanceUID']);
      expect(uidsOf(responses)).toEqual(studyUids(...expected));
    });

    it.each([
      ['0800-1030', ['chestCt', 'abdomenCt']],
      ['1400-', ['brainMr', 'wholeBodyPet']],
      ['-0900', ['chestCt']],
      ['12', ['kneeMr']],
    ] as const)('matches the StudyTime range %s', async (range, expected) => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', `StudyTime=${range}`, 'StudyInstanceUID']);
      expect(uidsOf(responses)).toEqual(studyUids(...expected));
    });

    it('combines conditions: every key must match', async () => {
      const responses = await query('study', [
        'QueryRetrieveLevel=STUDY',
        'PatientName=doe*',
        'StudyDate=20240101-20240131',
        'StudyDescription=CT C*',
        'StudyInstanceUID',
      ]);
      expect(uidsOf(responses)).toEqual(studyUids('chestCt'));
    });

    it('computes the study counts and ModalitiesInStudy', async () => {
      const responses = await query('study', [
        'QueryRetrieveLevel=STUDY',
        'StudyInstanceUID',
        'ModalitiesInStudy',
        'NumberOfStudyRelatedSeries',
        'NumberOfStudyRelatedInstances',
      ]);
      const byUid = new Map(responses.map((r) => [r.StudyInstanceUID, r]));
      const expectations: [keyof typeof studies, string[], number, number][] = [
        ['chestCt', ['CT', 'PT'], 2, 7],
        ['brainMr', ['MR'], 1, 3],
        ['abdomenCt', ['CT', 'OT'], 2, 3],
        ['wholeBodyPet', ['PT'], 1, 2],
        ['kneeMr', ['MR'], 1, 2],
      ];
      for (const [name, modalities, series, instances] of expectations) {
        const response = byUid.get(studies[name].uid);
        expect(response, name).toBeDefined();
        expect(values(response!.ModalitiesInStudy).sort(), name).toEqual(modalities);
        expect(Number(response!.NumberOfStudyRelatedSeries), name).toBe(series);
        expect(Number(response!.NumberOfStudyRelatedInstances), name).toBe(instances);
      }
    });

    it('matches ModalitiesInStudy against any modality of the study', async () => {
      const pt = await query('study', ['QueryRetrieveLevel=STUDY', 'ModalitiesInStudy=PT', 'StudyInstanceUID']);
      expect(uidsOf(pt)).toEqual(studyUids('chestCt', 'wholeBodyPet'));
      for (const response of pt) expect(values(response.ModalitiesInStudy)).toContain('PT');
      const mrOrOt = await query('study', ['QueryRetrieveLevel=STUDY', 'ModalitiesInStudy=MR\\OT', 'StudyInstanceUID']);
      expect(uidsOf(mrOrOt)).toEqual(studyUids('brainMr', 'abdomenCt', 'kneeMr'));
    });
  });

  describe('non-ASCII names (ISO_IR 192)', () => {
    it.each(['MÜLLER*', 'müller^hans', 'M?LLER^*'])('matches PatientName %j and answers in UTF-8', async (pattern) => {
      const responses = await query('study', [
        'SpecificCharacterSet=ISO_IR 192',
        'QueryRetrieveLevel=STUDY',
        `PatientName=${pattern}`,
        'StudyInstanceUID',
      ]);
      expect(uidsOf(responses)).toEqual(studyUids('kneeMr'));
      expect(responses[0]).toMatchObject({ SpecificCharacterSet: 'ISO_IR 192', PatientName: 'MÜLLER^HANS' });
    });

    it('declares the character set when a matched value needs it, and only then', async () => {
      const all = await query('patient', ['QueryRetrieveLevel=PATIENT', 'PatientName', 'PatientID']);
      const hans = all.find((r) => r.PatientID === 'FIND-P4');
      expect(hans).toMatchObject({ PatientName: 'MÜLLER^HANS', SpecificCharacterSet: 'ISO_IR 192' });
      const ascii = await query('patient', ['QueryRetrieveLevel=PATIENT', 'PatientName=doe*', 'PatientID']);
      expect(ascii).toHaveLength(2);
      for (const response of ascii) expect(response).not.toHaveProperty('SpecificCharacterSet');
    });
  });

  describe('Study Root, SERIES and IMAGE levels', () => {
    it('lists the series of one study with their instance counts', async () => {
      const { uid, series } = studies.chestCt;
      const responses = await query('study', [
        'QueryRetrieveLevel=SERIES',
        `StudyInstanceUID=${uid}`,
        'SeriesInstanceUID',
        'Modality',
        'SeriesNumber',
        'NumberOfSeriesRelatedInstances',
      ]);
      expect(uidsOf(responses, 'SeriesInstanceUID')).toEqual(series.map((s) => s.seriesInstanceUid).sort());
      for (const built of series) {
        const response = responses.find((r) => r.SeriesInstanceUID === built.seriesInstanceUid)!;
        expect(response).toMatchObject({ StudyInstanceUID: uid, Modality: built.modality, SeriesNumber: String(built.seriesNumber) });
        expect(Number(response.NumberOfSeriesRelatedInstances)).toBe(built.sopInstanceUids.length);
      }
    });

    it('matches a series key within a study', async () => {
      const { uid, series } = studies.chestCt;
      const responses = await query('study', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${uid}`, 'Modality=PT', 'SeriesInstanceUID']);
      expect(uidsOf(responses, 'SeriesInstanceUID')).toEqual([series.find((s) => s.modality === 'PT')!.seriesInstanceUid]);
    });

    it('finds series across studies by modality', async () => {
      const responses = await query('study', ['QueryRetrieveLevel=SERIES', 'Modality=MR', 'SeriesInstanceUID', 'StudyInstanceUID']);
      expect(uidsOf(responses)).toEqual(studyUids('brainMr', 'kneeMr'));
    });

    it('lists chosen instances of a series by a list of SOP Instance UIDs', async () => {
      const { uid, series } = studies.chestCt;
      const ct = series.find((s) => s.modality === 'CT')!;
      const wanted = [ct.instances[0], ct.instances[2]];
      const responses = await query('study', [
        'QueryRetrieveLevel=IMAGE',
        `StudyInstanceUID=${uid}`,
        `SeriesInstanceUID=${ct.seriesInstanceUid}`,
        `SOPInstanceUID=${wanted.map((i) => i.sopInstanceUid).join('\\')}`,
        'SOPClassUID',
        'InstanceNumber',
      ]);
      expect(uidsOf(responses, 'SOPInstanceUID')).toEqual(wanted.map((i) => i.sopInstanceUid).sort());
      for (const instance of wanted) {
        const response = responses.find((r) => r.SOPInstanceUID === instance.sopInstanceUid)!;
        expect(response).toMatchObject({ SeriesInstanceUID: ct.seriesInstanceUid, InstanceNumber: String(instance.instanceNumber) });
        expect(response.SOPClassUID).toMatch(/CTImageStorage|1\.2\.840\.10008\.5\.1\.4\.1\.1\.2$/);
      }
    });

    it('lists every instance of a series', async () => {
      const { uid, series } = studies.abdomenCt;
      const ct = series.find((s) => s.modality === 'CT')!;
      const responses = await query('study', [
        'QueryRetrieveLevel=IMAGE',
        `StudyInstanceUID=${uid}`,
        `SeriesInstanceUID=${ct.seriesInstanceUid}`,
        'SOPInstanceUID',
      ]);
      expect(uidsOf(responses, 'SOPInstanceUID')).toEqual([...ct.sopInstanceUids].sort());
    });
  });

  describe('Patient Root', () => {
    it('answers PATIENT level with the patient counts', async () => {
      const responses = await query('patient', [
        'QueryRetrieveLevel=PATIENT',
        'PatientName=doe*',
        'PatientID',
        'NumberOfPatientRelatedStudies',
        'NumberOfPatientRelatedSeries',
        'NumberOfPatientRelatedInstances',
      ]);
      const byId = new Map(responses.map((r) => [r.PatientID, r]));
      expect([...byId.keys()].sort()).toEqual(['FIND-P1', 'FIND-P2']);
      expect(byId.get('FIND-P1')).toMatchObject({
        PatientName: 'DOE^JOHN',
        NumberOfPatientRelatedStudies: '2',
        NumberOfPatientRelatedSeries: '3',
        NumberOfPatientRelatedInstances: '10',
      });
      expect(byId.get('FIND-P2')).toMatchObject({
        PatientName: 'Doe^Jane',
        NumberOfPatientRelatedStudies: '1',
        NumberOfPatientRelatedSeries: '2',
        NumberOfPatientRelatedInstances: '3',
      });
    });

    it('lists every patient of the database once', async () => {
      const responses = await query('patient', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName']);
      expect(responses.map((r) => r.PatientID).sort()).toEqual(['FIND-P1', 'FIND-P2', 'FIND-P3', 'FIND-P4']);
    });

    it('walks down from a patient to its studies, series and instances', async () => {
      const studiesOfJohn = await query('patient', [
        'QueryRetrieveLevel=STUDY',
        'PatientID=FIND-P1',
        'StudyInstanceUID',
        'StudyDate',
        'NumberOfStudyRelatedInstances',
      ]);
      expect(uidsOf(studiesOfJohn)).toEqual(studyUids('chestCt', 'brainMr'));

      const { uid, series } = studies.brainMr;
      const seriesOfStudy = await query('patient', [
        'QueryRetrieveLevel=SERIES',
        'PatientID=FIND-P1',
        `StudyInstanceUID=${uid}`,
        'SeriesInstanceUID',
        'Modality',
      ]);
      expect(uidsOf(seriesOfStudy, 'SeriesInstanceUID')).toEqual([series[0].seriesInstanceUid]);
      expect(seriesOfStudy[0].Modality).toBe('MR');

      const instances = await query('patient', [
        'QueryRetrieveLevel=IMAGE',
        'PatientID=FIND-P1',
        `StudyInstanceUID=${uid}`,
        `SeriesInstanceUID=${series[0].seriesInstanceUid}`,
        'SOPInstanceUID',
        'InstanceNumber',
      ]);
      expect(uidsOf(instances, 'SOPInstanceUID')).toEqual([...series[0].sopInstanceUids].sort());
    });

    it('matches study keys at STUDY level under one patient', async () => {
      const responses = await query('patient', [
        'QueryRetrieveLevel=STUDY',
        'PatientID=FIND-P1',
        'StudyDate=20240201-',
        'StudyInstanceUID',
      ]);
      expect(uidsOf(responses)).toEqual(studyUids('brainMr'));
    });
  });

  describe('invalid identifiers', () => {
    it.each([
      ['a series key in a study query', 'study', ['QueryRetrieveLevel=STUDY', 'Modality=CT', 'StudyInstanceUID']],
      ['a non-unique key with a value above the level', 'study', ['QueryRetrieveLevel=SERIES', 'StudyDate=20240105', 'SeriesInstanceUID']],
      ['an instance key in a series query', 'patient', ['QueryRetrieveLevel=SERIES', 'SOPInstanceUID', 'SeriesInstanceUID']],
      ['the PATIENT level in Study Root', 'study', ['QueryRetrieveLevel=PATIENT', 'PatientID']],
      ['a malformed date', 'study', ['QueryRetrieveLevel=STUDY', 'StudyDate=2024-01-05', 'StudyInstanceUID']],
      // dcmjs strips every character but digits and dots from a UI value it reads: read naively,
      // this request would arrive as the exact UID "2.25.1" and be answered Success, no match.
      ['a wildcard in a UID', 'study', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID=2.25.*1']],
    ] as const)('refuses %s with A900', async (_, model, keys) => {
      const { responses, finalStatusCode, log } = await find(model, [...keys], { debug: true });
      expect(responses).toEqual([]);
      // PS3.4 C.4.1.1.4: A900 "Identifier does not match SOP Class", with an Error Comment.
      expect(finalStatusCode, log).toBe('a900');
      expect(/\(0000,0902\) LO \[([^\]]*)\]/.exec(log)?.[1]).toMatch(/^DF_ERR_QUERY_INVALID/);
    });
  });

  describe('UIDs as stored', () => {
    it('answers a stored UID that is not all digits and dots as it is', async () => {
      const responses = await query('study', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'PatientID'], 'ODDUIDS');
      expect(responses).toEqual([{ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: studies.oddUid.uid, PatientID: 'FIND-O1' }]);
    });

    // Read through dcmjs, the request's UID would lose its letters ("….A1" arriving as "….1")
    // before the matcher sees it, and the study would never be found by its UID.
    it('finds a study by a stored UID that is not all digits and dots', async () => {
      const responses = await query(
        'study',
        ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studies.oddUid.uid}`, 'PatientID'],
        'ODDUIDS',
      );
      expect(responses).toEqual([{ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: studies.oddUid.uid, PatientID: 'FIND-O1' }]);
    });
  });

  describe('databases by called AE title', () => {
    it('finds what was sent to STUDYA only through STUDYA', async () => {
      const keys = ['QueryRetrieveLevel=STUDY', 'PatientName=doe*', 'StudyInstanceUID', 'NumberOfStudyRelatedInstances'];
      const viaStudyA = await query('study', keys, 'STUDYA');
      expect(uidsOf(viaStudyA)).toEqual(studyUids('studyA'));
      expect(viaStudyA[0].NumberOfStudyRelatedInstances).toBe('2');

      const viaDefault = await query('study', keys, 'DICOMFLOW');
      expect(uidsOf(viaDefault)).toEqual(studyUids('chestCt', 'brainMr', 'abdomenCt'));
    });

    it('keeps the patients of each database apart', async () => {
      const viaStudyA = await query('patient', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'NumberOfPatientRelatedInstances'], 'STUDYA');
      expect(viaStudyA).toEqual([{ QueryRetrieveLevel: 'PATIENT', PatientID: 'FIND-A1', NumberOfPatientRelatedInstances: '2' }]);
      const archieViaDefault = await query('patient', ['QueryRetrieveLevel=PATIENT', 'PatientID=FIND-A1'], 'DICOMFLOW');
      expect(archieViaDefault).toEqual([]);
    });
  });
});
