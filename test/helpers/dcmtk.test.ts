import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, secondaryCaptureRgb } from '../fixtures/builder.ts';
import { startDcmqrscp } from './dcmtk-peers.ts';
import { findscu, hasTool, parseDump, parseFindscuResponses, runDcmtk, storescu } from './dcmtk.ts';
import { freePort } from './net.ts';

// Captured from `findscu -v -S` against dcmqrscp (DCMTK 3.6.7): the request identifiers are
// logged as a data set too, and must not count as a response.
const FINDSCU_VERBOSE_LOG = `I: Requesting Association
I: Association Accepted (Max Send PDV: 16372)
I: Sending Find Request (MsgID 1)
I: Request Identifiers:
I: 
I: # Dicom-Data-Set
I: # Used TransferSyntax: Little Endian Explicit
I: (0008,0052) CS [SERIES]                                 #   6, 1 QueryRetrieveLevel
I: (0008,0060) CS (no value available)                     #   0, 0 Modality
I: (0020,000d) UI (no value available)                     #   0, 0 StudyInstanceUID
I: (0020,000e) UI (no value available)                     #   0, 0 SeriesInstanceUID
I: 
I: ---------------------------
I: Find Response: 1 (Pending)
I: 
I: # Dicom-Data-Set
I: # Used TransferSyntax: Little Endian Explicit
I: (0008,0052) CS [SERIES]                                 #   6, 1 QueryRetrieveLevel
I: (0008,0054) AE [QRSCP ]                                 #   6, 1 RetrieveAETitle
I: (0008,0060) CS [CT]                                     #   2, 1 Modality
I: (0020,000d) UI [2.25.319723031807020383993257988366310689361] #  44, 1 StudyInstanceUID
I: (0020,000e) UI [2.25.122226643592736352235113878454419504978] #  44, 1 SeriesInstanceUID
I: 
I: ---------------------------
I: Find Response: 2 (Pending)
I: 
I: # Dicom-Data-Set
I: # Used TransferSyntax: Little Endian Explicit
I: (0008,0052) CS [SERIES]                                 #   6, 1 QueryRetrieveLevel
I: (0008,0054) AE [QRSCP ]                                 #   6, 1 RetrieveAETitle
I: (0008,0060) CS [OT]                                     #   2, 1 Modality
I: (0020,000d) UI [2.25.325486681896185594897110416992870656875] #  44, 1 StudyInstanceUID
I: (0020,000e) UI [2.25.225542558175993616824241154136626448470] #  44, 1 SeriesInstanceUID
I: 
I: Received Final Find Response (Success)
I: Releasing Association
`;

// Captured from dcmdump: nested sequences, a private block, a multi-valued element.
const NESTED_DUMP = `
# Dicom-File-Format

# Dicom-Meta-Information-Header
# Used TransferSyntax: Little Endian Explicit
(0002,0000) UL 204                                      #   4, 1 FileMetaInformationGroupLength

# Dicom-Data-Set
# Used TransferSyntax: Little Endian Explicit
(0008,0008) CS [ORIGINAL\\PRIMARY]                       #  16, 2 ImageType
(0009,0010) LO [DICOMFLOW FIXTURE]                      #  18, 1 PrivateCreator
(0009,1010) SQ (Sequence with undefined length #=2)     # u/l, 1 Unknown Tag & Data
  (fffe,e000) na (Item with undefined length #=3)         # u/l, 1 Item
    (0009,0010) LO [DICOMFLOW FIXTURE]                      #  18, 1 PrivateCreator
    (0009,1011) LO [nested private item]                    #  20, 1 Unknown Tag & Data
    (0009,1012) SQ (Sequence with undefined length #=1)     # u/l, 1 Unknown Tag & Data
      (fffe,e000) na (Item with undefined length #=3)         # u/l, 1 Item
        (0008,0100) SH [DF001]                                  #   6, 1 CodeValue
        (0008,0104) LO [Doubly nested]                          #  14, 1 CodeMeaning
      (fffe,e00d) na (ItemDelimitationItem)                   #   0, 0 ItemDelimitationItem
    (fffe,e0dd) na (SequenceDelimitationItem)               #   0, 0 SequenceDelimitationItem
  (fffe,e00d) na (ItemDelimitationItem)                   #   0, 0 ItemDelimitationItem
  (fffe,e000) na (Item with undefined length #=2)         # u/l, 1 Item
    (0009,1011) LO [second item]                            #  12, 1 Unknown Tag & Data
  (fffe,e00d) na (ItemDelimitationItem)                   #   0, 0 ItemDelimitationItem
(fffe,e0dd) na (SequenceDelimitationItem)               #   0, 0 SequenceDelimitationItem
(0010,0010) PN [Phantom^Seed1]                          #  14, 1 PatientName
(0020,000e) UI [1.2.345\0]                              #   8, 1 SeriesInstanceUID
(0028,0010) US 128                                      #   2, 1 Rows
(0028,1050) DS [40\\-600]                                #   6, 2 WindowCenter
(0054,0016) SQ (Sequence with explicit length #=1)      #  62, 1 RadiopharmaceuticalInformationSequence
  (fffe,e000) na (Item with explicit length #=1)          #  54, 1 Item
    (0054,0300) SQ (Sequence with explicit length #=0)      #   0, 1 RadionuclideCodeSequence
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)   #   0, 0 ItemDelimitationItem
(7fe0,0010) OW 0000\\0000\\0000\\0000\\0000\\0000... # 32768, 1 PixelData
`;

describe('parseDump', () => {
  it('builds nested data sets, keying private elements by tag', () => {
    const [dataset] = parseDump(NESTED_DUMP);
    expect(dataset).toEqual({
      ImageType: 'ORIGINAL\\PRIMARY',
      '00090010': 'DICOMFLOW FIXTURE',
      '00091010': [
        {
          '00090010': 'DICOMFLOW FIXTURE',
          '00091011': 'nested private item',
          '00091012': [{ CodeValue: 'DF001', CodeMeaning: 'Doubly nested' }],
        },
        { '00091011': 'second item' },
      ],
      PatientName: 'Phantom^Seed1',
      SeriesInstanceUID: '1.2.345', // odd-length UIDs are padded with NUL
      Rows: '128',
      WindowCenter: '40\\-600',
      RadiopharmaceuticalInformationSequence: [{ RadionuclideCodeSequence: [] }],
      PixelData: '0000\\0000\\0000\\0000\\0000\\0000...',
    });
  });
});

describe('parseFindscuResponses', () => {
  it('returns the responses only, with padding trimmed', () => {
    const responses = parseFindscuResponses(FINDSCU_VERBOSE_LOG);
    expect(responses).toEqual([
      {
        QueryRetrieveLevel: 'SERIES',
        RetrieveAETitle: 'QRSCP',
        Modality: 'CT',
        StudyInstanceUID: '2.25.319723031807020383993257988366310689361',
        SeriesInstanceUID: '2.25.122226643592736352235113878454419504978',
      },
      {
        QueryRetrieveLevel: 'SERIES',
        RetrieveAETitle: 'QRSCP',
        Modality: 'OT',
        StudyInstanceUID: '2.25.325486681896185594897110416992870656875',
        SeriesInstanceUID: '2.25.225542558175993616824241154136626448470',
      },
    ]);
  });

  it('returns nothing for a query without matches', () => {
    expect(parseFindscuResponses('I: Requesting Association\nI: Received Final Find Response (Success)\n')).toEqual([]);
  });
});

describe.skipIf(!hasTool('dcmqrscp') || !hasTool('findscu') || !hasTool('storescu'))('findscu against dcmqrscp', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-dcmtk-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('parses real C-FIND responses at study and series level', async () => {
    const archive = await startDcmqrscp({ baseDir: tmp });
    try {
      const ct = await ctSeries(path.join(tmp, 'ct'), {
        slices: 2,
        rows: 32,
        cols: 32,
        patientId: 'FIND-1',
        patientName: 'Find^Me',
        studyDate: '20220202',
      });
      const sc = await secondaryCaptureRgb(path.join(tmp, 'sc'), { rows: 8, cols: 8, patientId: 'FIND-2', patientName: 'Find^You' });
      const stored = await storescu(['-aec', archive.aeTitle, '127.0.0.1', String(archive.port), ...ct.files, ...sc.files]);
      expect(stored.code, stored.stderr).toBe(0);

      const studies = await findscu([
        '-S',
        '-aec',
        archive.aeTitle,
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        'StudyInstanceUID',
        '-k',
        'PatientID',
        '-k',
        'PatientName',
        '-k',
        'StudyDate',
        '127.0.0.1',
        String(archive.port),
      ]);
      expect(studies.code, studies.stderr).toBe(0);
      const byStudy = Object.fromEntries(parseFindscuResponses(studies.stdout + studies.stderr).map((r) => [r.StudyInstanceUID, r]));
      expect(byStudy[ct.studyInstanceUid]).toMatchObject({ PatientID: 'FIND-1', PatientName: 'Find^Me', StudyDate: '20220202' });
      expect(byStudy[sc.studyInstanceUid]).toMatchObject({ PatientID: 'FIND-2', PatientName: 'Find^You' });
      expect(Object.keys(byStudy)).toHaveLength(2);

      const seriesLevel = await findscu([
        '-v',
        '-S',
        '-aec',
        archive.aeTitle,
        '-k',
        'QueryRetrieveLevel=SERIES',
        '-k',
        `StudyInstanceUID=${ct.studyInstanceUid}`,
        '-k',
        'SeriesInstanceUID',
        '-k',
        'Modality',
        '-k',
        'SeriesNumber',
        '127.0.0.1',
        String(archive.port),
      ]);
      const series = parseFindscuResponses(seriesLevel.stderr + seriesLevel.stdout);
      expect(series).toHaveLength(1);
      expect(series[0]).toMatchObject({ SeriesInstanceUID: ct.seriesInstanceUid, Modality: 'CT', SeriesNumber: '1' });
    } finally {
      await archive.stop();
    }
  });
});

describe.skipIf(!hasTool('dcmdump') || !hasTool('storescp'))('runDcmtk', () => {
  it('reports a non-zero exit without throwing', async () => {
    const result = await runDcmtk('dcmdump', ['/nonexistent/file.dcm']);
    expect(result.code).toBe(1);
    expect(result.timedOut).toBe(false);
    expect(result.stderr).toMatch(/No such file/);
  });

  it('kills a tool at its timeout and says so', async () => {
    const result = await runDcmtk('storescp', [String(await freePort())], { timeoutMs: 300 });
    expect(result).toMatchObject({ code: null, timedOut: true, signal: 'SIGKILL' });
  });

  it('rejects when the program does not exist', async () => {
    await expect(runDcmtk('no-such-dcmtk-tool', [])).rejects.toThrow(/cannot run no-such-dcmtk-tool: ENOENT/);
    expect(hasTool('no-such-dcmtk-tool', { probeOnly: true })).toBe(false);
    expect(hasTool('dcmdump')).toBe(true);
  });
});
