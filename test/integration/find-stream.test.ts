// Issue 14: C-FIND answers a large database page by page (the whole answer is never held), and
// a C-CANCEL ends it at once with status FE00. The studies are filed into the index directly:
// what is measured is the answer, not the receive path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileIndexedStudies, type IndexedStudy } from '../fixtures/index-studies.ts';
import { findscu, hasTool, parseFindscuResponses } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const STUDIES = 3000;

describe.skipIf(!hasTool('findscu'))('C-FIND over thousands of studies', () => {
  let server: Server;
  let studies: IndexedStudy[];

  beforeAll(async () => {
    // No pipeline runs on these arrivals: they are filed here, and their objects have no bytes.
    server = await startTestServer({
      databases: [{ name: 'Import' }, { name: 'Many', aeTitle: 'MANY' }],
      pipelinesDir: tempDir('df-no-pipelines-'),
      defaultPipeline: false,
    });
    studies = await fileIndexedStudies(server.index, 'Many', STUDIES);
  });

  afterAll(async () => {
    await server?.close();
  });

  async function find(extra: string[]) {
    const result = await findscu([
      '-S',
      '-v',
      '-aet',
      'STREAMTEST',
      '-aec',
      'MANY',
      ...extra,
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      'StudyInstanceUID',
      '-k',
      'PatientID',
      '127.0.0.1',
      String(server.dicomPort),
    ]);
    const log = `${result.stdout}${result.stderr}`;
    return {
      code: result.code,
      responses: parseFindscuResponses(log),
      final: /Received Final Find Response \(([^)]*)\)/.exec(log)?.[1],
      log,
    };
  }

  it('answers a universal query with every study, once each', async () => {
    const { code, responses, final, log } = await find([]);
    expect(code, log.slice(-2000)).toBe(0);
    expect(final).toBe('Success');
    expect(responses).toHaveLength(STUDIES);
    expect(responses.map((r) => r.StudyInstanceUID).sort()).toEqual(studies.map((s) => s.studyInstanceUid).sort());
    const first = responses.find((r) => r.PatientID === 'MANY-00000');
    expect(first).toEqual({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: studies[0].studyInstanceUid, PatientID: 'MANY-00000' });
  });

  it('stops sending matches on C-CANCEL and ends with status Cancel (FE00)', async () => {
    const { code, responses, final, log } = await find(['--cancel', '5']);
    expect(code, log.slice(-2000)).toBe(0);
    // DCMTK names FE00 "Matching terminated due to Cancel request".
    expect(final, log.slice(-2000)).toMatch(/Cancel/);
    expect(responses.length).toBeGreaterThanOrEqual(5);
    // What was already on its way when the cancel came is still delivered; the rest is not sent.
    expect(responses.length).toBeLessThan(STUDIES / 2);
  });
});
