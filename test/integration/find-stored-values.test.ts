// Issue 14, "every request gets an answer": an object is stored as received, so a value longer
// than its VR allows (a 1000-character name, an 80-character LO, a malformed date) reaches the
// index. A C-FIND matching it answers Success with the value as stored, beside intact other
// matches, at every level; and a match that cannot be encoded at all ends the C-FIND with C000
// and a coded log line, never an A-ABORT.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SopClass, encodePart10, newUid } from '../fixtures/builder.ts';
import { writeFile } from 'node:fs/promises';
import { dumpDataset, findscu, hasTool, storescu, type DumpDataset } from '../helpers/dcmtk.ts';
import { dicomwebClient } from '../helpers/dicomweb.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

type Server = Awaited<ReturnType<typeof startTestServer>>;

/** Each value exceeds its VR: PN component > 64, LO > 64, SH > 16, DA and TM malformed, CS > 16, IS > 12. */
const LONG = {
  PatientName: { vr: 'PN', value: `LONGNAME^${'N'.repeat(991)}` },
  PatientID: { vr: 'LO', value: `PID-${'7'.repeat(76)}` },
  StudyDescription: { vr: 'LO', value: 'D'.repeat(300) },
  AccessionNumber: { vr: 'SH', value: `ACC-${'1'.repeat(26)}` },
  StudyDate: { vr: 'DA', value: '2024010199' },
  StudyTime: { vr: 'TM', value: '1234567890123456789' },
  Modality: { vr: 'CS', value: 'MRMRMRMRMRMRMRMRMRMR' },
  SeriesDescription: { vr: 'LO', value: 'S'.repeat(100) },
  SeriesNumber: { vr: 'IS', value: '1234567890123' },
  InstanceNumber: { vr: 'IS', value: '9876543210987' },
} as const;

const TAGS: Record<keyof typeof LONG, string> = {
  PatientName: '00100010',
  PatientID: '00100020',
  StudyDescription: '00081030',
  AccessionNumber: '00080050',
  StudyDate: '00080020',
  StudyTime: '00080030',
  Modality: '00080060',
  SeriesDescription: '0008103E',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
};

const GOOD = {
  PatientName: 'GOOD^PATIENT',
  PatientID: 'GOOD-1',
  StudyDescription: 'CT CHEST',
  AccessionNumber: 'A1',
  StudyDate: '20240105',
  StudyTime: '083000',
  Modality: 'CT',
  SeriesDescription: 'AXIAL',
  SeriesNumber: '1',
  InstanceNumber: '1',
};

const KEYS = Object.keys(LONG) as (keyof typeof LONG)[];
const LEVEL_KEYS = {
  STUDY: [
    'StudyInstanceUID',
    'PatientName',
    'PatientID',
    'StudyDescription',
    'AccessionNumber',
    'StudyDate',
    'StudyTime',
    'ModalitiesInStudy',
  ],
  SERIES: ['StudyInstanceUID', 'SeriesInstanceUID', 'Modality', 'SeriesDescription', 'SeriesNumber'],
  IMAGE: ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'InstanceNumber'],
} as const;

describe.skipIf(!hasTool('findscu') || !hasTool('storescu') || !hasTool('dcmdump'))(
  'C-FIND of stored values longer than their VR allows',
  () => {
    let server: Server;
    const logLines: Record<string, unknown>[] = [];
    const uids = { long: { study: newUid(), series: newUid(), sop: newUid() }, good: { study: newUid(), series: newUid(), sop: newUid() } };

    beforeAll(async () => {
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line));
          done();
        },
      });
      server = await startTestServer({}, pino({ level: 'warn' }, sink));
      const dir = tempDir('df-find-long-');
      const object = (u: { study: string; series: string; sop: string }, values: Record<string, unknown>) =>
        encodePart10(
          {
            SOPClassUID: SopClass.SecondaryCaptureImageStorage,
            SOPInstanceUID: u.sop,
            StudyInstanceUID: u.study,
            SeriesInstanceUID: u.series,
            ConversionType: 'WSD',
            ...values,
          },
          { allowInvalidVRLength: true },
        );
      // Raw elements: dcmjs's natural path would cut a CS, IS or DA before writing it.
      const longElements = Object.fromEntries(KEYS.map((k) => [TAGS[k], { vr: LONG[k].vr, Value: [LONG[k].value] }]));
      await writeFile(path.join(dir, 'long.dcm'), object(uids.long, longElements));
      await writeFile(path.join(dir, 'good.dcm'), object(uids.good, GOOD));
      const sent = await storescu([
        '-aec',
        'DICOMFLOW',
        '127.0.0.1',
        String(server.dicomPort),
        path.join(dir, 'long.dcm'),
        path.join(dir, 'good.dcm'),
      ]);
      expect(sent.code, sent.stderr).toBe(0);
    });

    afterAll(async () => {
      await server?.close();
    });

    /** findscu extracting every response to a file, each read back completely by dcmdump (+L). */
    async function find(keys: string[], verbosity: '-v' | '-d' = '-v', transferSyntax: string[] = []) {
      const out = tempDir('df-find-long-rsp-');
      const result = await findscu([
        '-S',
        verbosity,
        ...transferSyntax,
        '-X',
        '-od',
        out,
        '-aet',
        'LONGTEST',
        '-aec',
        'DICOMFLOW',
        ...keys.flatMap((k) => ['-k', k]),
        '127.0.0.1',
        String(server.dicomPort),
      ]);
      const log = `${result.stdout}${result.stderr}`;
      const files = readdirSync(out)
        .filter((f) => f.startsWith('rsp'))
        .sort();
      const responses: DumpDataset[] = [];
      for (const f of files) responses.push(await dumpDataset(path.join(out, f), ['+L']));
      return { code: result.code, log, responses, final: /Received Final Find Response \(([^)]*)\)/.exec(log)?.[1] };
    }

    for (const level of ['STUDY', 'SERIES', 'IMAGE'] as const) {
      it(`a universal query at ${level} level answers every match with Success, the long values as stored`, async () => {
        const { code, log, responses, final } = await find([`QueryRetrieveLevel=${level}`, ...LEVEL_KEYS[level]]);
        expect(code, log).toBe(0);
        expect(log).not.toMatch(/abort/i);
        expect(final, log).toBe('Success');
        expect(responses).toHaveLength(2);
        const long = responses.find((r) => r.StudyInstanceUID === uids.long.study)!;
        const good = responses.find((r) => r.StudyInstanceUID === uids.good.study)!;
        for (const key of LEVEL_KEYS[level]) {
          if (key in LONG) {
            expect(long[key], key).toBe(LONG[key as keyof typeof LONG].value);
            expect(good[key], key).toBe(GOOD[key as keyof typeof GOOD]);
          }
        }
        if (level === 'STUDY') {
          expect(long.ModalitiesInStudy).toBe(LONG.Modality.value);
          expect(good.ModalitiesInStudy).toBe('CT');
        }
        if (level !== 'STUDY') expect(good.SeriesInstanceUID).toBe(uids.good.series);
        if (level === 'IMAGE') expect(good.SOPInstanceUID).toBe(uids.good.sop);
      });
    }

    it('an association on Implicit VR Little Endian gets the same values', async () => {
      const { log, responses, final } = await find(['QueryRetrieveLevel=STUDY', ...LEVEL_KEYS.STUDY], '-v', ['-xi']);
      expect(final, log).toBe('Success');
      const long = responses.find((r) => r.StudyInstanceUID === uids.long.study)!;
      for (const key of ['PatientName', 'PatientID', 'StudyDescription', 'AccessionNumber', 'StudyDate', 'StudyTime'] as const)
        expect(long[key], key).toBe(LONG[key].value);
      expect(responses.find((r) => r.StudyInstanceUID === uids.good.study)?.PatientName).toBe(GOOD.PatientName);
    });

    it('QIDO-RS returns the same stored values: DICOM JSON has no length limit', async () => {
      const qido = dicomwebClient(server.httpPort, server.adminToken);
      const studies = await qido.get(`/Import/studies?StudyInstanceUID=${uids.long.study}&includefield=StudyDescription`);
      expect(studies.status).toBe(200);
      const [study] = studies.json();
      expect(study['00100010'].Value[0].Alphabetic).toBe(LONG.PatientName.value);
      expect(study['00081030'].Value[0]).toBe(LONG.StudyDescription.value);
      expect(study['00080050'].Value[0]).toBe(LONG.AccessionNumber.value);
      const series = await qido.get(`/Import/studies/${uids.long.study}/series`);
      expect(series.status).toBe(200);
      expect(series.json()[0]['00080060'].Value[0]).toBe(LONG.Modality.value);
    });

    it('a match whose identifier cannot be encoded ends the C-FIND with C000 and a coded log line, not an A-ABORT', async () => {
      // Rows is US: a stored "abc" (which the indexer never writes) cannot be encoded; filed
      // through the index, it stands for any failure while building one response.
      const bad = { study: newUid(), series: newUid(), sop: newUid() };
      const attributes = {
        PatientID: 'BAD-1',
        PatientName: 'BAD^ROWS',
        StudyInstanceUID: bad.study,
        SeriesInstanceUID: bad.series,
        SOPInstanceUID: bad.sop,
        SOPClassUID: SopClass.SecondaryCaptureImageStorage,
        Modality: 'OT',
        Rows: 'abc',
      };
      const now = new Date().toISOString();
      const recorded = await server.index.recordReceived(
        {
          objectId: 'bad-rows',
          path: 'indexed-only/bad-rows.dcm',
          size: 1,
          transferSyntaxUid: '1.2.840.10008.1.2.1',
          sopClassUid: attributes.SOPClassUID,
          sopInstanceUid: bad.sop,
          attributes,
          source: 'import',
          database: 'Import',
          createdBy: 'fixture',
          receivedAt: now,
        },
        'keep-first',
      );
      await server.index.fileInstance(
        'Import',
        {
          objectId: recorded.objectId,
          sopClassUid: attributes.SOPClassUID,
          sopInstanceUid: bad.sop,
          attributes,
          createdBy: 'fixture',
          createdAt: now,
          source: 'import',
          arrivalId: recorded.arrivalId,
        },
        'keep-first',
      );

      const { code, log, responses } = await find(
        ['QueryRetrieveLevel=IMAGE', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'Rows'],
        '-d',
      );
      expect(code, log).toBe(0);
      expect(log).not.toMatch(/abort/i);
      // The matches before the bad one went out; the final response says why the rest did not.
      expect(responses.length).toBeLessThanOrEqual(2);
      const finalMessage = log.slice(log.indexOf('Received Final Find Response'));
      expect(finalMessage, log).toMatch(/DIMSE Status\s*:\s*0xc000/i);
      expect(finalMessage, log).toMatch(/ErrorComment|\(0000,0902\)/);
      expect(finalMessage, log).toContain('[DF_ERR_QUERY_RESPONSE_FAILED: match 3 cannot be encoded: Not a');
      const line = logLines.find((l) => l.code === 'DF_ERR_QUERY_RESPONSE_FAILED');
      expect(line).toMatchObject({
        level: 50,
        msg: 'C-FIND failed',
        queryLevel: 'IMAGE',
        matches: 2,
        err: { details: { SOPInstanceUID: bad.sop } },
      });

      // The association ended normally and the server answers the next query.
      const next = await find(['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
      expect(next.final, next.log).toBe('Success');
      expect(next.responses).toHaveLength(3);
    });
  },
);
