import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDicomdir,
  emptyFileSet,
  fileIdPath,
  isFileId,
  parseFileSet,
  placeInstances,
  type FileSet,
  type FileSetInstance,
} from '../../core/dicom/dicomdir.ts';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { readIndexedAttributes } from '../../core/dicom/indexed-attributes.ts';
import { readFileMeta } from '../../core/dicom/part10.ts';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { ctSeries, mrSeries, petSeries, secondaryCaptureRgb, type BuiltSeries } from '../../test/fixtures/builder.ts';
import { dcmdump, hasTool, runDcmtk } from '../../test/helpers/dcmtk.ts';
import plugin from './index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'df-dicomdir-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let registered: RegisteredPlugin;
let ct: BuiltSeries;
let mr: BuiltSeries;
let pt: BuiltSeries;
let sc: BuiltSeries;

beforeAll(async () => {
  const registry = new PluginRegistry();
  // The engine's registration checks (name, version, kinds, options schema) must pass.
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registered = registry.resolve('dicomdir@1')!;
  ct = await ctSeries(path.join(tmp, 'ct'), { slices: 3, rows: 16, cols: 16, patientId: 'PAT_CT', patientName: 'Doe^Jane' });
  mr = await mrSeries(path.join(tmp, 'mr'), { slices: 2, rows: 16, cols: 16, seed: 2, patientId: 'PAT_MR' });
  pt = await petSeries(path.join(tmp, 'pt'), { slices: 2, rows: 16, cols: 16, frameDurationsSec: [60], seed: 3, patientId: 'PAT_PT' });
  // Same patient and study as the CT: one more series under the same PATIENT and STUDY records.
  sc = await secondaryCaptureRgb(path.join(tmp, 'sc'), {
    patientId: 'PAT_CT',
    patientName: 'Doe^Jane',
    studyUid: ct.studyInstanceUid,
    seriesNumber: 9,
  });
});

/** A step input as the engine builds it from an arrival: attributes decoded the way receive decodes them. */
function inputOf(file: string, i = 0): StepInput {
  const bytes = fs.readFileSync(file);
  const meta = readFileMeta(bytes);
  const walker = new DatasetWalker({ explicitVr: meta.transferSyntaxUid !== '1.2.840.10008.1.2', littleEndian: true });
  walker.push(bytes.subarray(meta.datasetOffset));
  const attributes = readIndexedAttributes(walker.end(), true);
  return {
    arrivalId: `arrival-${path.basename(file)}-${i}`,
    objectId: `object-${path.basename(file)}-${i}`,
    path: file,
    sopClassUid: meta.sopClassUid,
    sopInstanceUid: meta.sopInstanceUid,
    seriesInstanceUid: attributes.SeriesInstanceUID,
    studyInstanceUid: attributes.StudyInstanceUID,
    attributes,
    source: 'network',
    receivedAt: '2024-03-15T10:20:30.000Z',
  };
}

const instanceOf = (input: StepInput, transferSyntaxUid = '1.2.840.10008.1.2.1'): FileSetInstance => ({
  sopClassUid: input.sopClassUid,
  sopInstanceUid: input.sopInstanceUid,
  transferSyntaxUid,
  studyInstanceUid: input.studyInstanceUid!,
  seriesInstanceUid: input.seriesInstanceUid!,
  attributes: input.attributes,
  receivedAt: input.receivedAt,
});

const allFiles = () => [...ct.files, ...mr.files, ...pt.files, ...sc.files];

// ---------------------------------------------------------------------------------------------
// An independent reader of the DICOMDIR bytes: explicit VR little endian, defined lengths only.

interface ParsedRecord {
  offset: number;
  values: Map<number, Buffer>;
}

interface ParsedDicomdir {
  meta: Map<number, string>;
  top: Map<number, Buffer>;
  records: ParsedRecord[];
}

const LONG = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR']);

function readElements(buf: Buffer, start: number, end: number, onSequence?: (at: number, length: number) => void): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let at = start;
  while (at < end) {
    const tag = ((buf.readUInt16LE(at) << 16) | buf.readUInt16LE(at + 2)) >>> 0;
    const vr = buf.toString('latin1', at + 4, at + 6);
    const long = LONG.has(vr);
    const length = long ? buf.readUInt32LE(at + 8) : buf.readUInt16LE(at + 6);
    expect(length, `element ${tag.toString(16)} has a defined length`).not.toBe(0xffffffff);
    const valueAt = at + (long ? 12 : 8);
    if (vr === 'SQ') onSequence?.(valueAt, length);
    out.set(tag, buf.subarray(valueAt, valueAt + length));
    at = valueAt + length;
  }
  expect(at).toBe(end);
  return out;
}

function parseDicomdir(buf: Buffer): ParsedDicomdir {
  expect(buf.toString('latin1', 128, 132)).toBe('DICM');
  const groupLength = buf.readUInt32LE(140);
  const metaEnd = 144 + groupLength;
  const meta = new Map([...readElements(buf, 132, metaEnd)].map(([t, v]) => [t, v.toString('latin1').replace(/[\0 ]+$/, '')]));
  const records: ParsedRecord[] = [];
  const top = readElements(buf, metaEnd, buf.length, (at, length) => {
    let item = at;
    while (item < at + length) {
      expect(buf.readUInt16LE(item)).toBe(0xfffe);
      expect(buf.readUInt16LE(item + 2)).toBe(0xe000);
      const itemLength = buf.readUInt32LE(item + 4);
      records.push({ offset: item, values: readElements(buf, item + 8, item + 8 + itemLength) });
      item += 8 + itemLength;
    }
    expect(item).toBe(at + length);
  });
  return { meta, top, records };
}

const ul = (b: Buffer | undefined) => b!.readUInt32LE(0);
const text = (record: ParsedRecord, tag: number) => {
  const charset = record.values.get(0x00080005)?.toString('latin1').trim();
  return record.values
    .get(tag)
    ?.toString(charset === 'ISO_IR 192' ? 'utf8' : 'latin1')
    .replace(/[\0 ]+$/, '');
};

interface TreeNode {
  type: string;
  record: ParsedRecord;
  children: TreeNode[];
}

/** Follows the offsets from the root entity; every record must be reached exactly once. */
function followOffsets(parsed: ParsedDicomdir): TreeNode[] {
  const byOffset = new Map(parsed.records.map((r) => [r.offset, r]));
  const seen = new Set<number>();
  const chain = (first: number): TreeNode[] => {
    const nodes: TreeNode[] = [];
    for (let at = first; at !== 0; ) {
      const record = byOffset.get(at);
      expect(record, `an offset points at record ${at}`).toBeDefined();
      expect(seen.has(at), `record at ${at} reached twice`).toBe(false);
      seen.add(at);
      nodes.push({ type: text(record!, 0x00041430)!, record: record!, children: chain(ul(record!.values.get(0x00041420))) });
      at = ul(record!.values.get(0x00041400));
    }
    return nodes;
  };
  const patients = chain(ul(parsed.top.get(0x00041200)));
  expect(ul(parsed.top.get(0x00041202))).toBe(patients.at(-1)?.record.offset ?? 0);
  expect(seen.size).toBe(parsed.records.length);
  return patients;
}

async function expectValidDicomdir(file: string): Promise<string[]> {
  const dump = await dcmdump([file]);
  expect(dump.code, dump.stderr).toBe(0);
  expect(dump.stderr).toBe('');
  expect(dump.stdout).not.toMatch(/^[WE]: /m);
  const vfy = await runDcmtk('dciodvfy', [file]);
  const lines = `${vfy.stdout}${vfy.stderr}`.split('\n').filter((l) => l.trim() !== '');
  expect(lines.filter((l) => /^Error/.test(l))).toEqual([]);
  return lines;
}

function fileSetOf(files: string[]): FileSet {
  return placeInstances(
    emptyFileSet('2.25.123456789'),
    files.map((f) => instanceOf(inputOf(f))),
  ).fileSet;
}

// ---------------------------------------------------------------------------------------------

describe('File IDs', () => {
  const hostile = [
    '../../../etc/passwd',
    '..\\..\\windows',
    '1.2.3/../../x',
    'C:\\DICOM\\x',
    'name with spaces',
    '\u0000\u0001\u001f',
    'ÅÄÖ.ü',
    '/absolute/path',
    'DICOMDIR',
    '',
    `1.2.${'9'.repeat(200)}`,
  ];

  it('are conformant (PS3.10 8.2) and never come from DICOM values, however hostile', async () => {
    // Hostile identifying values with valid UIDs: each is its own patient, with two instances.
    const instances: FileSetInstance[] = hostile.flatMap((value, i) =>
      [1, 2].map((n) => ({
        sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
        sopInstanceUid: `1.2.3.${i}.${n}`,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        studyInstanceUid: `1.2.3.${i}`,
        seriesInstanceUid: `1.2.3.${i}.0`,
        attributes: {
          PatientID: value,
          PatientName: value,
          StudyID: value,
          Modality: value,
          StudyDescription: value,
          AccessionNumber: value,
        },
        receivedAt: '2024-01-02T03:04:05Z',
      })),
    );
    const { fileSet, placements } = placeInstances(emptyFileSet('2.25.1'), instances);
    const ids = placements.map((p) => p.entry.fileId);
    for (const id of ids) {
      expect(isFileId(id)).toBe(true);
      expect(id).toHaveLength(5);
      expect(id[0]).toBe('DICOM');
      expect(
        id
          .slice(1)
          .map((c) => c[0])
          .join(''),
      ).toBe('PSEI');
      for (const component of id.slice(1)) expect(component).toMatch(/^[PSEI]\d{7}$/);
      expect(fileIdPath('/fs', id).startsWith('/fs/DICOM/')).toBe(true);
    }
    // Collision-free: one File ID per SOP Instance.
    expect(new Set(ids.map((id) => id.join('/'))).size).toBe(instances.length);
    expect(ids[0].slice(0, 4)).toEqual(ids[1].slice(0, 4));
    expect([ids[0][4], ids[1][4]]).toEqual(['I0000001', 'I0000002']);
    expect(new Set(ids.map((id) => id[1])).size).toBe(hostile.length);
    // The DICOMDIR is still valid: values are kept within their VR's limits.
    const file = path.join(tmp, 'HOSTILE');
    fs.writeFileSync(file, buildDicomdir(fileSet, { fileSetId: 'HOSTILE' }));
    // No errors; dciodvfy only remarks that a name without '^' looks like the retired PN form.
    const report = await expectValidDicomdir(file);
    expect(
      report.filter(
        (l) =>
          l !== 'BasicDirectory' && !/^Warning - Value dubious for this VR - \(0x0010,0x0010\) PN .* Retired Person Name form$/.test(l),
      ),
    ).toEqual([]);
  });

  it('an instance whose UIDs are not UIDs is refused, not written into the DICOMDIR', () => {
    const valid: FileSetInstance = {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.2.3.4',
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      studyInstanceUid: '1.2.3',
      seriesInstanceUid: '1.2.3.5',
      attributes: {},
      receivedAt: '2024-01-02T03:04:05Z',
    };
    for (const uid of hostile) {
      for (const key of ['sopInstanceUid', 'studyInstanceUid', 'seriesInstanceUid', 'sopClassUid', 'transferSyntaxUid'] as const) {
        expect(() => placeInstances(emptyFileSet('2.25.1'), [{ ...valid, [key]: uid }])).toThrow(new RegExp(`its ${key} .* is not a UID`));
      }
    }
    expect(() => placeInstances(emptyFileSet('2.25.1'), [{ ...valid, sopInstanceUid: `1.${'2'.repeat(63)}` }])).toThrow(/is not a UID/);
    expect(placeInstances(emptyFileSet('2.25.1'), [{ ...valid, sopInstanceUid: `1.${'2'.repeat(62)}` }]).placements[0].added).toBe(true);
  });

  it('the same SOP Instance UID keeps its File ID and makes no second record', () => {
    const first = fileSetOf(ct.files);
    const again = placeInstances(first, [instanceOf(inputOf(ct.files[1])), instanceOf(inputOf(ct.files[1]))]);
    expect(again.placements.map((p) => p.added)).toEqual([false, false]);
    expect(again.placements[0].entry.fileId).toEqual(first.entries[1].fileId);
    expect(again.fileSet.entries).toHaveLength(ct.files.length);
    expect(buildDicomdir(again.fileSet, { fileSetId: 'X' })).toEqual(buildDicomdir(first, { fileSetId: 'X' }));
  });

  it('lays out one folder per patient, study and series; a study stays with the patient it came with', () => {
    const fileSet = fileSetOf([...ct.files, ...mr.files, ...sc.files]);
    const ids = fileSet.entries.map((e) => e.fileId.join('/'));
    expect(ids).toEqual([
      'DICOM/P0000001/S0000001/E0000001/I0000001',
      'DICOM/P0000001/S0000001/E0000001/I0000002',
      'DICOM/P0000001/S0000001/E0000001/I0000003',
      'DICOM/P0000002/S0000001/E0000001/I0000001',
      'DICOM/P0000002/S0000001/E0000001/I0000002',
      'DICOM/P0000001/S0000001/E0000002/I0000001',
    ]);
    // The CT's study sent again under another Patient ID: filed with its study, and said so.
    const moved = inputOf(ct.files[0]);
    const renamed = {
      ...instanceOf(moved),
      sopInstanceUid: `${moved.sopInstanceUid}.9`,
      seriesInstanceUid: `${moved.seriesInstanceUid}.9`,
      attributes: { ...moved.attributes, PatientID: 'OTHER' },
    };
    const { placements } = placeInstances(fileSet, [renamed]);
    expect(placements[0].entry.fileId.join('/')).toBe('DICOM/P0000001/S0000001/E0000003/I0000001');
    expect(placements[0].notes).toEqual([expect.stringMatching(/already filed under another patient/)]);
    // A series that turns up with another Study Instance UID stays in the study it was filed in.
    const strayed = placeInstances(fileSet, [
      { ...instanceOf(moved), sopInstanceUid: `${moved.sopInstanceUid}.8`, studyInstanceUid: '1.2.8' },
    ]);
    expect(strayed.placements[0].entry.fileId.join('/')).toBe('DICOM/P0000001/S0000001/E0000001/I0000004');
    expect(strayed.placements[0].notes).toEqual([
      `series ${moved.seriesInstanceUid} is already filed under study ${ct.studyInstanceUid}; filed with its series`,
    ]);
    // ... and that Patient ID did not take over P0000001: its next study gets a folder of its own.
    const next = placeInstances(placeInstances(fileSet, [renamed]).fileSet, [
      { ...renamed, sopInstanceUid: '1.9.1', studyInstanceUid: '1.9', seriesInstanceUid: '1.9.2' },
    ]);
    expect(next.placements[0].entry.fileId.join('/')).toBe('DICOM/P0000003/S0000001/E0000001/I0000001');
  });

  it('a tampered index cannot point outside the root', () => {
    expect(() => fileIdPath('/fs', ['..', 'etc'])).toThrow(/not a conformant File ID/);
    expect(() => fileIdPath('/fs', ['DICOM', 'a/b'])).toThrow(/not a conformant File ID/);
    const good = fileSetOf(ct.files.slice(0, 1));
    const bad = JSON.parse(JSON.stringify(good));
    bad.entries[0].fileId = ['DICOM', '..', '..', '..', 'PASSWD'];
    expect(() => parseFileSet(JSON.stringify(bad))).toThrow(/bad fileId/);
    expect(parseFileSet(JSON.stringify(good))).toEqual(good);
  });
});

describe('the DICOMDIR', () => {
  it('parses with dcmdump and passes dciodvfy; its offsets lead to every record once', async () => {
    const fileSet = fileSetOf(allFiles());
    const bytes = buildDicomdir(fileSet, { fileSetId: 'DICOMFLOW_TEST' });
    const file = path.join(tmp, 'DICOMDIR');
    fs.writeFileSync(file, bytes);
    const report = await expectValidDicomdir(file);
    // dciodvfy names the IOD and finds nothing to say about it.
    expect(report).toEqual(['BasicDirectory']);

    const parsed = parseDicomdir(bytes);
    expect(parsed.meta.get(0x00020002)).toBe('1.2.840.10008.1.3.10');
    expect(parsed.meta.get(0x00020010)).toBe('1.2.840.10008.1.2.1');
    expect(parsed.meta.get(0x00020003)).toBe('2.25.123456789');
    expect(parsed.top.get(0x00041130)!.toString('latin1')).toBe('DICOMFLOW_TEST');
    expect(parsed.top.get(0x00041212)!.readUInt16LE(0)).toBe(0);

    const patients = followOffsets(parsed);
    const shape = (nodes: TreeNode[]): unknown => nodes.map((n) => (n.children.length ? { [n.type]: shape(n.children) } : n.type));
    expect(shape(patients)).toEqual([
      { PATIENT: [{ STUDY: [{ SERIES: ['IMAGE', 'IMAGE', 'IMAGE'] }, { SERIES: ['IMAGE'] }] }] },
      { PATIENT: [{ STUDY: [{ SERIES: ['IMAGE', 'IMAGE'] }] }] },
      { PATIENT: [{ STUDY: [{ SERIES: ['IMAGE', 'IMAGE'] }] }] },
    ]);
    for (const r of parsed.records) expect(r.values.get(0x00041410)!.readUInt16LE(0)).toBe(0xffff);

    // Keys per record type (PS3.3 F.5.1–F.5.4).
    const [ctPatient, mrPatient] = patients;
    expect(text(ctPatient.record, 0x00100010)).toBe('Doe^Jane');
    expect(text(ctPatient.record, 0x00100020)).toBe('PAT_CT');
    // Plain ASCII: no Specific Character Set needed (PS3.3 F.5.1).
    expect(ctPatient.record.values.has(0x00080005)).toBe(false);
    expect(text(mrPatient.record, 0x00100020)).toBe('PAT_MR');
    const study = ctPatient.children[0].record;
    expect(text(study, 0x0020000d)).toBe(ct.studyInstanceUid);
    expect(text(study, 0x00080020)).toBe(ct.studyDate);
    for (const tag of [0x00080030, 0x00200010]) expect(text(study, tag)).toMatch(/\S/);
    for (const tag of [0x00080050, 0x00081030]) expect(study.values.has(tag)).toBe(true);
    const series = ctPatient.children[0].children[0].record;
    expect([text(series, 0x00080060), text(series, 0x0020000e), text(series, 0x00200011)]).toEqual([
      'CT',
      ct.seriesInstanceUid,
      String(ct.seriesNumber),
    ]);

    // Each IMAGE record names its file, and the file holds that SOP Instance.
    const images = parsed.records.filter((r) => text(r, 0x00041430) === 'IMAGE');
    const byUid = new Map(fileSet.entries.map((e) => [e.sopInstanceUid, e]));
    expect(images).toHaveLength(allFiles().length);
    for (const image of images) {
      const uid = text(image, 0x00041511)!;
      const entry = byUid.get(uid)!;
      expect(text(image, 0x00041500)!.split('\\')).toEqual(entry.fileId);
      expect(text(image, 0x00041510)).toBe(entry.sopClassUid);
      expect(text(image, 0x00041512)).toBe('1.2.840.10008.1.2.1');
      expect(text(image, 0x00200013)).toMatch(/^\d+$/);
    }
    expect(new Set(images.map((r) => text(r, 0x00041511)))).toEqual(new Set(fileSet.entries.map((e) => e.sopInstanceUid)));
  });

  it('is the same bytes for the same file-set', () => {
    const fileSet = fileSetOf(allFiles());
    expect(
      buildDicomdir(parseFileSet(JSON.stringify(fileSet)), { fileSetId: 'A' }).equals(buildDicomdir(fileSet, { fileSetId: 'A' })),
    ).toBe(true);
  });

  it('an empty file-set has zero root offsets and an empty sequence', async () => {
    const bytes = buildDicomdir(emptyFileSet('2.25.42'), { fileSetId: '' });
    const file = path.join(tmp, 'EMPTY');
    fs.writeFileSync(file, bytes);
    await expectValidDicomdir(file);
    const parsed = parseDicomdir(bytes);
    expect([ul(parsed.top.get(0x00041200)), ul(parsed.top.get(0x00041202)), parsed.records.length]).toEqual([0, 0, 0]);
  });

  it('stands in for missing or malformed Type 1 keys, says so, and stays valid', async () => {
    const base = {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
      transferSyntaxUid: '1.2.840.10008.1.2',
      receivedAt: '2024-05-06T07:08:09.000Z',
    };
    const { fileSet, placements } = placeInstances(emptyFileSet('2.25.7'), [
      {
        ...base,
        sopInstanceUid: '1.2.3.1',
        studyInstanceUid: '1.2.3',
        seriesInstanceUid: '1.2.3.4',
        attributes: {
          SeriesDate: '20230102',
          StudyTime: '25:00',
          Modality: 'x-ray',
          InstanceNumber: 'seven',
          PatientName: 'A\\B',
          StudyDescription: `${'long '.repeat(30)}`,
        },
      },
      {
        ...base,
        sopInstanceUid: '1.2.4.2',
        studyInstanceUid: '1.2.4',
        seriesInstanceUid: '1.2.4.4',
        attributes: {
          PatientName: '山田^太郎=ヤマダ^タロウ',
          PatientID: 'JP1',
          StudyDate: '2023.01.02',
          StudyTime: '10:11:12',
          StudyID: 'S1',
          Modality: 'OT',
          SeriesNumber: '+0004',
          InstanceNumber: '2',
        },
      },
      {
        ...base,
        sopInstanceUid: '1.2.5.1',
        studyInstanceUid: '1.2.5',
        seriesInstanceUid: '1.2.5.4',
        attributes: {
          PatientName: 'Müller^Jürgen',
          PatientID: 'DE1',
          StudyDate: '20230102',
          StudyTime: '101112',
          StudyID: 'S1',
          Modality: 'OT',
          SeriesNumber: '1',
          InstanceNumber: '1',
        },
      },
    ]);
    expect(placements[0].notes).toEqual([
      'PatientID is missing; wrote "P0000001"',
      'StudyDate is missing; wrote the SeriesDate "20230102"',
      'StudyTime "25:00" is not valid; wrote "070809"',
      'StudyID is missing; wrote "S0000001"',
      'Modality "x-ray" is not valid; wrote "OT"',
      'SeriesNumber is missing; wrote "1"',
      'InstanceNumber "seven" is not valid; wrote "1"',
    ]);
    expect(placements[1].entry.keys).toMatchObject({ StudyDate: '20230102', StudyTime: '101112', SeriesNumber: '4' });
    expect(placements.slice(1).map((p) => p.notes)).toEqual([[], []]);
    const file = path.join(tmp, 'STANDIN');
    fs.writeFileSync(file, buildDicomdir(fileSet, { fileSetId: 'X' }));
    await expectValidDicomdir(file);
    const patients = followOffsets(parseDicomdir(fs.readFileSync(file)));
    expect(text(patients[0].record, 0x00100010)).toBe('A');
    expect(text(patients[1].record, 0x00080005)).toBe('ISO_IR 192');
    expect(text(patients[1].record, 0x00100010)).toBe('山田^太郎=ヤマダ^タロウ');
    expect(text(patients[2].record, 0x00080005)).toBe('ISO_IR 100');
    expect(text(patients[2].record, 0x00100010)).toBe('Müller^Jürgen');
    expect(patients[0].record.values.has(0x00080005)).toBe(false);
  });

  it('refuses a File-set ID that is not 16 of A-Z, 0-9, _', () => {
    expect(() => buildDicomdir(emptyFileSet('2.25.1'), { fileSetId: 'lower case' })).toThrow(/File-set ID/);
    expect(() => buildDicomdir(emptyFileSet('2.25.1'), { fileSetId: 'A'.repeat(17) })).toThrow(/File-set ID/);
  });
});

// ---------------------------------------------------------------------------------------------
// The step, run as the engine runs a main-thread step.

function seed(name: string, inputs: StepInput[]): StepContextSeed {
  const jobDir = path.join(tmp, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'dicomdir',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'instance', callingAeTitles: ['MODALITY'], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'dicomdir', index: 0 },
    inputs,
    previousOutputs: [],
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

function options(given: Record<string, unknown>): { root: string; fileSetId: string } {
  const o = structuredClone(given);
  expect(registered.validateOptions(o), JSON.stringify(registered.validateOptions.errors)).toBe(true);
  return o as { root: string; fileSetId: string };
}

async function runStep(name: string, inputs: StepInput[], opts: { root: string; fileSetId: string }) {
  const { ctx, effects } = createStepContext(seed(name, inputs), new AbortController().signal, () => {});
  await plugin.run(ctx, opts);
  return effects;
}

describe('the dicomdir step', () => {
  it('copies the original bytes under their File IDs and writes a valid DICOMDIR; a rerun changes nothing', async () => {
    const root = path.join(tmp, 'fileset-a');
    const opts = options({ root });
    expect(opts.fileSetId).toBe('DICOMFLOW');
    const inputs = [...ct.files, ...mr.files].map((f) => inputOf(f));
    const effects = await runStep('a', inputs, opts);
    expect(effects.outputs).toEqual([
      { kind: 'file', path: path.join(root, 'DICOMDIR'), description: `DICOMDIR of the file-set in ${root}` },
    ]);
    expect(effects.log.at(-1)?.message).toBe('filed 5 new instance(s), 0 already in the file-set');
    await expectValidDicomdir(path.join(root, 'DICOMDIR'));
    const index = parseFileSet(fs.readFileSync(path.join(root, '.dicomflow-fileset.json'), 'utf8'));
    for (const [i, input] of inputs.entries()) {
      const entry = index.entries.find((e) => e.sopInstanceUid === input.sopInstanceUid)!;
      expect(fs.readFileSync(fileIdPath(root, entry.fileId)).equals(fs.readFileSync(inputs[i].path))).toBe(true);
    }
    expect(fs.readdirSync(root).sort()).toEqual(['.dicomflow-fileset.json', 'DICOM', 'DICOMDIR']);

    const before = fs.readFileSync(path.join(root, 'DICOMDIR'));
    const again = await runStep('a-again', inputs, opts);
    expect(again.log.at(-1)?.message).toBe('filed 0 new instance(s), 5 already in the file-set');
    expect(fs.readFileSync(path.join(root, 'DICOMDIR')).equals(before)).toBe(true);
  });

  it('serializes concurrent jobs on one root: every instance once, one valid DICOMDIR', async () => {
    const root = path.join(tmp, 'fileset-b');
    const opts = options({ root, fileSetId: 'CONCURRENT' });
    const files = allFiles();
    // One job per instance, all at once, plus a duplicate arrival of the first.
    await Promise.all([...files, files[0]].map((f, i) => runStep(`b-${i}`, [inputOf(f, i)], opts)));
    const index = parseFileSet(fs.readFileSync(path.join(root, '.dicomflow-fileset.json'), 'utf8'));
    expect(index.entries).toHaveLength(files.length);
    await expectValidDicomdir(path.join(root, 'DICOMDIR'));
    const parsed = parseDicomdir(fs.readFileSync(path.join(root, 'DICOMDIR')));
    followOffsets(parsed);
    expect(parsed.records.filter((r) => text(r, 0x00041430) === 'IMAGE')).toHaveLength(files.length);
    expect(fs.existsSync(path.join(root, '.dicomflow-fileset.lock'))).toBe(false);
  });

  it('rebuilds the DICOMDIR from the index after a crash between the two writes', async () => {
    const root = path.join(tmp, 'fileset-c');
    const opts = options({ root });
    const inputs = ct.files.map((f) => inputOf(f));
    await runStep('c', inputs, opts);
    const good = fs.readFileSync(path.join(root, 'DICOMDIR'));
    fs.writeFileSync(path.join(root, 'DICOMDIR'), good.subarray(0, 200));
    await runStep('c-retry', inputs, opts);
    expect(fs.readFileSync(path.join(root, 'DICOMDIR')).equals(good)).toBe(true);
  });

  it('takes over a lock left by a process that is gone', async () => {
    const root = path.join(tmp, 'fileset-d');
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(
      path.join(root, '.dicomflow-fileset.lock'),
      JSON.stringify({ pid: 2 ** 22 + 12345, hostname: os.hostname(), since: '2020-01-01T00:00:00Z' }),
    );
    await runStep('d', [inputOf(mr.files[0])], options({ root }));
    expect(fs.existsSync(path.join(root, 'DICOMDIR'))).toBe(true);
    expect(fs.existsSync(path.join(root, '.dicomflow-fileset.lock'))).toBe(false);
  });

  it('never overwrites a DICOMDIR it did not write', async () => {
    const root = path.join(tmp, 'fileset-e');
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'DICOMDIR'), 'someone else’s');
    await expect(runStep('e', [inputOf(mr.files[0])], options({ root }))).rejects.toThrow(/did not write/);
    expect(fs.readFileSync(path.join(root, 'DICOMDIR'), 'utf8')).toBe('someone else’s');
  });

  it.skipIf(!hasTool('dcmmkdir'))('DCMTK finds every file already listed (dcmmkdir --update adds no record)', async () => {
    const root = path.join(tmp, 'fileset-f');
    await runStep(
      'f',
      allFiles().map((f) => inputOf(f)),
      options({ root }),
    );
    const records = async () => (await dcmdump([path.join(root, 'DICOMDIR')])).stdout.match(/"Directory Record"/g)?.length;
    const before = await records();
    const update = await runDcmtk('dcmmkdir', ['--update', '+r', '-Pgp', 'DICOM'], { cwd: root });
    expect(update.code, update.stderr).toBe(0);
    expect(`${update.stdout}${update.stderr}`).not.toMatch(/^[WE]: /m);
    expect(await records()).toBe(before);
  });

  it('a pipeline without root, or with a bad File-set ID, is refused when it loads', () => {
    const registry = new PluginRegistry();
    registry.register(plugin, registered.moduleUrl);
    const load = (opts: unknown) =>
      loadPipeline(
        JSON.stringify({ name: 'media', trigger: { on: 'instance' }, steps: [{ plugin: 'dicomdir', options: opts }] }, null, 2),
        'media.json',
        registry,
        { databases: ['Import'] },
      );
    expect(load({}).problems.map((p) => [p.pointer, p.message])).toEqual([['/steps/0/options', 'missing required property "root"']]);
    expect(load({ root: '/x', fileSetId: 'my cd' }).problems.map((p) => p.pointer)).toEqual(['/steps/0/options/fileSetId']);
    expect(load({ root: './data/dicomdir' }).pipeline).toBeDefined();
  });
});
