// C-FIND against Orthanc (issue 15): the same one-instance studies in both, DCMTK findscu per
// query, same run. Selective STUDY queries (a patient-name wildcard, a date range, a patient ID,
// and the three together) are timed on each; then a universal query on dicomflow while C-ECHOs
// are sent, each timed, and the server's RSS. dicomflow's studies are filed into its index
// before it starts (C-FIND reads only the index); Orthanc receives the files by storescu.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openIndexDatabase } from '../core/store/sql/open.ts';
import { SqlIndex } from '../core/store/sql/sql-index.ts';
import { encodePart10, newUid } from '../test/fixtures/builder.ts';
import { findscu, missingDcmtkTool, parseFindscuResponses, storescu } from '../test/helpers/dcmtk.ts';
import {
  encodeCommandSet,
  encodePData,
  IMPLICIT_VR_LITTLE_ENDIAN,
  rawAssociate,
  sendEcho,
  VERIFICATION_SOP_CLASS,
} from '../test/helpers/raw-scu.ts';
import { encodeIdentifier } from '../server/dimse/identifier-encoder.ts';
import { positiveInt } from './support/args.ts';
import { cleanUp, makeTempDir, stopChild } from './support/cleanup.ts';
import { spawnDicomflow } from './support/dicomflow-process.ts';
import { procStatusBytes, RssSampler } from './support/memory.ts';
import { formatTable, median } from './support/table.ts';
import { orthancTarget, orthancVersion } from './support/targets.ts';

export const description =
  'C-FIND: selective STUDY queries on dicomflow and Orthanc (same studies, same run), C-ECHO during a universal query';

const USAGE = `npm run bench -- find-orthanc [--studies N] [--runs R]

  --studies N   one-instance studies in both servers (default 10000)
  --runs R      timed runs of each selective query on each server, after one warm-up (default 5)`;

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const mb = (bytes: number) => `${(bytes / (1 << 20)).toFixed(0)} MB`;

/** Study i: patient i, a family name shared by ten studies, dates over four years. */
function studyAttributes(i: number): Record<string, string> {
  const day = new Date(Date.UTC(2020, 0, 1) + (i % 1461) * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  return {
    PatientID: `P${String(i).padStart(6, '0')}`,
    PatientName: `FAMILY${String(i % 1000).padStart(3, '0')}^GIVEN${i}`,
    PatientBirthDate: '19600101',
    PatientSex: i % 2 ? 'F' : 'M',
    StudyInstanceUID: newUid(),
    StudyDate: day,
    StudyTime: '083000',
    StudyDescription: `CT CHEST ${i}`,
    AccessionNumber: `A${i}`,
    StudyID: String(i),
    SeriesInstanceUID: newUid(),
    SeriesNumber: '1',
    Modality: 'CT',
    SOPInstanceUID: newUid(),
    SOPClassUID: CT_IMAGE_STORAGE,
    InstanceNumber: '1',
  };
}

const SELECTIVE: [string, string[]][] = [
  ['patient name wildcard', ['-k', 'PatientName=FAMILY012*']],
  ['date range (7 days)', ['-k', 'StudyDate=20220301-20220307']],
  ['patient ID', ['-k', 'PatientID=P004242']],
  ['all three', ['-k', 'PatientName=FAMILY242*', '-k', 'StudyDate=20210101-20211231', '-k', 'PatientID=P004242']],
];
const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/**
 * Associate, one STUDY C-FIND, release, from this process: the servers' own time, without the
 * start of a findscu process (which dominates a query's time on a busy machine).
 */
async function rawFind(
  port: number,
  calledAe: string,
  keys: Record<string, string>,
): Promise<{ ms: number; matches: number; ok: boolean }> {
  const t0 = performance.now();
  const assoc = await rawAssociate({
    port,
    callingAe: 'FINDSCU',
    calledAe,
    contexts: [{ id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
  });
  if (!assoc.accepted) return { ms: performance.now() - t0, matches: 0, ok: false };
  const command = encodeCommandSet([
    [0x0002, { ui: STUDY_ROOT_FIND }],
    [0x0100, { us: 0x0020 }],
    [0x0110, { us: assoc.nextMessageId() }],
    [0x0700, { us: 0 }],
    [0x0800, { us: 0x0000 }],
  ]);
  const identifier = {
    QueryRetrieveLevel: 'STUDY',
    StudyInstanceUID: '',
    StudyDate: '',
    AccessionNumber: '',
    PatientID: '',
    PatientName: '',
    ...keys,
  };
  await assoc.sendRawBytes(encodePData(1, true, true, command));
  await assoc.sendRawBytes(encodePData(1, false, true, encodeIdentifier(identifier, IMPLICIT_VR_LITTLE_ENDIAN)));
  const responses = await assoc.readResponsesUntilFinal(600_000);
  await assoc.release();
  return { ms: performance.now() - t0, matches: responses.length - 1, ok: responses.at(-1)?.status === 0 };
}

/** The keys of SELECTIVE's findscu arguments, for rawFind. */
const keysOf = (args: string[]): Record<string, string> =>
  Object.fromEntries(args.filter((a) => a !== '-k').map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));

const RETURN_KEYS = [
  '-k',
  'QueryRetrieveLevel=STUDY',
  '-k',
  'StudyInstanceUID',
  '-k',
  'StudyDate',
  '-k',
  'AccessionNumber',
  '-k',
  'PatientID',
  '-k',
  'PatientName',
];

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { studies: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const missing = missingDcmtkTool(['findscu', 'storescu']);
  if (missing) {
    console.error(missing);
    return 1;
  }
  const version = orthancVersion();
  if (version === undefined) {
    console.error('Orthanc is not installed: nothing to compare with');
    return 1;
  }
  const studies = positiveInt(values.studies, '--studies', 10_000);
  const runs = positiveInt(values.runs, '--runs', 5);
  const root = makeTempDir('dicomflow-bench-find-orthanc-');
  const dataDir = path.join(root, 'data');
  const filesDir = path.join(root, 'files');
  const pipelinesDir = path.join(root, 'pipelines');
  for (const dir of [dataDir, filesDir, pipelinesDir]) fs.mkdirSync(dir, { recursive: true });
  const configFile = path.join(root, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      dataDir,
      pipelinesDir,
      defaultPipeline: false,
      dimse: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
    }),
  );

  const all = Array.from({ length: studies }, (_, i) => studyAttributes(i));
  let started = Date.now();
  const index = new SqlIndex(await openIndexDatabase({ dataDir }));
  const now = new Date().toISOString();
  for (let from = 0; from < all.length; from += 1000) {
    await Promise.all(
      all.slice(from, from + 1000).map(async (a, k) => {
        const objectId = `bench-${from + k}`;
        const r = await index.recordReceived(
          {
            objectId,
            path: `indexed-only/${objectId}.dcm`,
            size: 1,
            transferSyntaxUid: '1.2.840.10008.1.2.1',
            sopClassUid: CT_IMAGE_STORAGE,
            sopInstanceUid: a.SOPInstanceUID,
            attributes: a,
            source: 'import',
            database: 'Import',
            createdBy: 'bench',
            receivedAt: now,
          },
          'keep-first',
        );
        await index.fileInstance(
          'Import',
          {
            objectId,
            sopClassUid: CT_IMAGE_STORAGE,
            sopInstanceUid: a.SOPInstanceUID,
            attributes: a,
            createdBy: 'bench',
            createdAt: now,
            source: 'import',
            arrivalId: r.arrivalId,
          },
          'keep-first',
        );
      }),
    );
  }
  await index.close();
  fs.writeFileSync(path.join(dataDir, '.clean-stop'), new Date().toISOString());
  console.log(`${studies} studies filed into dicomflow's index in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  started = Date.now();
  all.forEach((a, i) =>
    fs.writeFileSync(
      path.join(filesDir, `${i}.dcm`),
      encodePart10({
        ...a,
        Rows: 1,
        Columns: 1,
        BitsAllocated: 16,
        BitsStored: 12,
        HighBit: 11,
        PixelRepresentation: 0,
        SamplesPerPixel: 1,
        PhotometricInterpretation: 'MONOCHROME2',
        PixelData: new Uint16Array([0]).buffer,
      }),
    ),
  );
  const orthanc = await orthancTarget(version, { DicomAlwaysAllowFind: true }).start();
  const sent = await storescu(['-aec', orthanc.aeTitle, '+sd', '+r', '127.0.0.1', String(orthanc.port), filesDir], {
    timeoutMs: 3_600_000,
  });
  const { stored } = await orthanc.storedCount();
  console.log(
    `${stored} of ${studies} studies stored into Orthanc ${version} in ${((Date.now() - started) / 1000).toFixed(1)} s (storescu exit ${sent.code})`,
  );

  const server = await spawnDicomflow(configFile);
  let failed = stored !== studies;
  try {
    const ask = async (port: number, aeTitle: string, keys: string[]) => {
      const t0 = performance.now();
      const result = await findscu(['-S', '-aec', aeTitle, ...RETURN_KEYS, ...keys, '127.0.0.1', String(port)], { timeoutMs: 600_000 });
      const ms = performance.now() - t0;
      const log = `${result.stdout}${result.stderr}`;
      return { ms, matches: parseFindscuResponses(log).length, ok: result.code === 0 };
    };
    const targets = [
      { name: 'dicomflow', port: server.dicomPort, aeTitle: 'DICOMFLOW', pid: server.child.pid! },
      { name: `Orthanc ${version}`, port: orthanc.port, aeTitle: orthanc.aeTitle, pid: orthanc.pid },
    ];
    const rows: string[][] = [];
    const totals = new Map<string, number>();
    // findscu's median time less the in-process one, per query and target: the findscu process's own share.
    const findscuMedians: number[][] = [];
    const rssSamplers = targets.map((t) => new RssSampler(t.pid));
    const loadAtStart = os.loadavg()[0];
    for (const [name, keys] of SELECTIVE) {
      for (const t of targets) await ask(t.port, t.aeTitle, keys);
      // Alternating, so that what else this machine does weighs on both alike.
      const times = targets.map((): number[] => []);
      const matches = targets.map(() => 0);
      for (let r = 0; r < runs; r++) {
        for (const [k, t] of targets.entries()) {
          const a = await ask(t.port, t.aeTitle, keys);
          if (!a.ok) failed = true;
          times[k].push(a.ms);
          matches[k] = a.matches;
        }
      }
      const medians = times.map(median);
      findscuMedians.push(medians);
      targets.forEach((t, k) => totals.set(t.name, (totals.get(t.name) ?? 0) + medians[k]));
      rows.push([
        name,
        String(matches[0]),
        `${medians[0].toFixed(0)} ms`,
        String(matches[1]),
        `${medians[1].toFixed(0)} ms`,
        (medians[0] / medians[1]).toFixed(2),
      ]);
    }
    const [ours, theirs] = targets.map((t) => totals.get(t.name)!);
    rows.push(['sum of medians', '', `${ours.toFixed(0)} ms`, '', `${theirs.toFixed(0)} ms`, (ours / theirs).toFixed(2)]);
    const rawRows: string[][] = [];
    const rawTotals = [0, 0];
    const rawMedians: number[][] = [];
    for (const [name, args] of SELECTIVE) {
      const keys = keysOf(args);
      // Three warm-ups: this process's own association and parsing code is cold at first.
      for (let w = 0; w < 3; w++) for (const t of targets) await rawFind(t.port, t.aeTitle, keys);
      const times = targets.map((): number[] => []);
      const matches = targets.map(() => 0);
      for (let r = 0; r < runs; r++) {
        for (const [k, t] of targets.entries()) {
          const a = await rawFind(t.port, t.aeTitle, keys);
          if (!a.ok) failed = true;
          times[k].push(a.ms);
          matches[k] = a.matches;
        }
      }
      const medians = times.map(median);
      rawTotals.forEach((_, k) => (rawTotals[k] += medians[k]));
      rawMedians.push(medians);
      rawRows.push([
        name,
        String(matches[0]),
        `${medians[0].toFixed(1)} ms`,
        String(matches[1]),
        `${medians[1].toFixed(1)} ms`,
        (medians[0] / medians[1]).toFixed(2),
      ]);
    }
    rawRows.push([
      'sum of medians',
      '',
      `${rawTotals[0].toFixed(1)} ms`,
      '',
      `${rawTotals[1].toFixed(1)} ms`,
      (rawTotals[0] / rawTotals[1]).toFixed(2),
    ]);
    const loadAfterQueries = os.loadavg()[0];
    const peaks = rssSamplers.map((s) => s.stop().peakSampledBytes);
    console.log(`\nSelective STUDY C-FIND over ${studies} studies (findscu per query; median of ${runs} after a warm-up):`);
    console.log(formatTable(['query', 'dicomflow matches', 'dicomflow', 'Orthanc matches', 'Orthanc', 'dicomflow / Orthanc'], rows));
    console.log(`\nThe same queries from this process (associate, C-FIND, release; no process start; median of ${runs}):`);
    console.log(formatTable(['query', 'dicomflow matches', 'dicomflow', 'Orthanc matches', 'Orthanc', 'dicomflow / Orthanc'], rawRows));
    const findscuShare = targets.map((_, k) => findscuMedians.map((m, q) => (m[k] - rawMedians[q][k]).toFixed(0)).join(', '));
    console.log(
      `findscu's own share (findscu median less in-process median, per query): dicomflow ${findscuShare[0]} ms; Orthanc ${findscuShare[1]} ms`,
    );
    console.log(`peak RSS while answering: dicomflow ${mb(peaks[0])}, Orthanc ${mb(peaks[1])}`);
    console.log(
      `issue 15: selective C-FIND with findscu per query ≤ 0.5× Orthanc's time: ${(ours / theirs).toFixed(2)}× ${ours / theirs <= 0.5 ? '[met]' : '[NOT MET]'}`,
    );

    // C-ECHO on its own association while a universal query streams its answer: associate,
    // C-ECHO and release from this process (no process start in the figure).
    const echo = async () => {
      const t0 = performance.now();
      const assoc = await rawAssociate({
        port: server.dicomPort,
        callingAe: 'ECHOSCU',
        calledAe: 'DICOMFLOW',
        contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
      });
      if (!assoc.accepted) failed = true;
      else {
        const r = await sendEcho(assoc);
        if (r.status !== 0) failed = true;
        await assoc.release();
      }
      return performance.now() - t0;
    };
    const atRest = median([await echo(), await echo(), await echo()]);
    const sampler = new RssSampler(server.child.pid!);
    const universal = ask(server.dicomPort, 'DICOMFLOW', []);
    let running = true;
    void universal.finally(() => (running = false));
    const during: number[] = [];
    await new Promise((resolve) => setTimeout(resolve, 300));
    while (running && during.length < 50) during.push(await echo());
    const u = await universal;
    const { peakSampledBytes } = sampler.stop();
    if (u.matches !== studies) failed = true;
    console.log(
      `\nUniversal STUDY C-FIND on dicomflow: ${u.matches} matches in ${(u.ms / 1000).toFixed(1)} s; peak RSS ${mb(peakSampledBytes)} (at rest ${mb(procStatusBytes(server.child.pid!, 'VmRSS') ?? 0)})`,
    );
    console.log(
      `C-ECHO (associate, echo, release, from the bench process): at rest ${atRest.toFixed(0)} ms; during the universal query ${during.length} echoes, ` +
        `median ${during.length ? median(during).toFixed(0) : '-'} ms, max ${during.length ? Math.max(...during).toFixed(0) : '-'} ms`,
    );
    const worstEcho = during.length ? Math.max(...during) : Number.POSITIVE_INFINITY;
    console.log(`issue 15: every C-ECHO during the universal query within 100 ms: ${worstEcho <= 100 ? '[met]' : '[NOT MET]'}`);
    console.log(`issue 15: RSS under 300 MB: ${Math.max(peaks[0], peakSampledBytes) < 300 * (1 << 20) ? '[met]' : '[NOT MET]'}`);
    console.log(
      `Machine: ${os.availableParallelism()} cores, 1-minute load average ${loadAtStart.toFixed(2)} when the timed queries began, ${loadAfterQueries.toFixed(2)} after the selective queries, ${os.loadavg()[0].toFixed(2)} at the end.`,
    );
    if (server.problems.length > 0) console.log(`server warnings:\n${server.problems.slice(0, 10).join('\n')}`);
  } finally {
    server.stopping();
    await stopChild(server.child);
    await orthanc.stop();
    await cleanUp();
  }
  return failed ? 1 : 0;
}
