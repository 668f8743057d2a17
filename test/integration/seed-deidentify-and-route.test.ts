// The research-export seed as shipped in pipelines/seed-deidentify-and-route.json, end to end
// through the real server: a PET/CT study (with a secondary-capture dose screen) sent with
// storescu → deidentify → route to a DCMTK storescp standing in for the research node; then the
// pseudonym looked up again with the CLI, as an admin and, refused, as a reader.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/app.ts';
import { ctSeries, petSeries, secondaryCaptureRgb } from '../fixtures/builder.ts';
import { startStorescp, type DcmtkPeer } from '../helpers/dcmtk-peers.ts';
import { dumpDataset, hasTool, storescu } from '../helpers/dcmtk.ts';
import { readPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const servers: RunningServer[] = [];
const peers: DcmtkPeer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const p of peers) await p.stop();
});

const PATIENT = { patientName: 'Wrenfield^Ottoline', patientId: 'PX9081WO', patientBirthDate: '19490617', accessionNumber: 'AQ7719WX' };

describe.skipIf(!hasTool('storescu') || !hasTool('storescp'))('seed: de-identify a study and route it to a research node', () => {
  it('sends only de-identified copies, consistent in UIDs, and the pseudonym can be looked up by an admin', async () => {
    const research = await startStorescp({ aeTitle: 'RESEARCH' });
    peers.push(research);
    const pipelines = tempDir('df-seed-deid-pipelines-');
    const seed = JSON.parse(fs.readFileSync(path.join(repo, 'pipelines/seed-deidentify-and-route.json'), 'utf8'));
    expect(seed.enabled).toBe(false);
    // As an operator would: enable it; quicker here.
    seed.enabled = true;
    seed.trigger.stableSeconds = 1;
    fs.writeFileSync(path.join(pipelines, 'seed.json'), JSON.stringify(seed));
    const s = await startTestServer({
      pipelinesDir: pipelines,
      defaultPipeline: false,
      remoteNodes: [{ aeTitle: 'RESEARCH', host: '127.0.0.1', port: research.port }],
      users: [{ name: 'rita', role: 'reader', databases: { '*': 'read' } }],
    });
    servers.push(s);
    expect([...s.pipelines.problems(), ...s.pipelines.warnings()]).toEqual([]);

    const fixtures = tempDir('df-seed-deid-fixtures-');
    const pet = await petSeries(path.join(fixtures, 'pet'), {
      ...PATIENT,
      uidSeed: 'seed-deid',
      slices: 2,
      rows: 16,
      cols: 16,
      frameDurationsSec: [60, 60],
      withPrivateTags: true,
    });
    const ct = await ctSeries(path.join(fixtures, 'ct'), {
      ...PATIENT,
      uidSeed: 'seed-deid',
      studyUid: pet.studyInstanceUid,
      frameOfReferenceUid: pet.frameOfReferenceUid,
      seriesNumber: 2,
      slices: 2,
      rows: 16,
      cols: 16,
    });
    const sc = await secondaryCaptureRgb(path.join(fixtures, 'sc'), {
      ...PATIENT,
      uidSeed: 'seed-deid',
      studyUid: pet.studyInstanceUid,
      seriesNumber: 3,
      rows: 8,
      cols: 8,
    });
    const sent = await storescu([
      '-aet',
      'SCANNER',
      '-aec',
      'DICOMFLOW',
      '127.0.0.1',
      String(s.dicomPort),
      ...pet.files,
      ...ct.files,
      ...sc.files,
    ]);
    expect(sent.code, sent.stderr).toBe(0);

    const job = await until(
      'the seed job',
      async () => (await s.jobs.listJobs({ pipeline: seed.name })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      180_000,
    );
    const detail = (await s.jobs.getJob(job.id))!;
    expect(detail.status, JSON.stringify(detail.steps?.map((st) => [st.id, st.status, st.error]))).toBe('succeeded');
    const [deid, route] = detail.steps!;
    expect([deid.id, route.id]).toEqual(['deidentify', 'route']);
    const table = deid.outputs.find((o) => o.kind === 'table')!.rows as { status: string }[];
    expect(table.filter((r) => r.status === 'refused')).toHaveLength(1); // the secondary capture
    const emitted = deid.outputs.filter((o) => o.kind === 'instance').map((o) => o.sopInstanceUid!);
    expect(emitted).toHaveLength(pet.files.length + ct.files.length);
    // "Received" is what the scanner sent; the de-identified copies are counted as produced,
    // in the status, the node's heartbeat row and Prometheus alike.
    const sentCount = pet.files.length + ct.files.length + sc.files.length;
    const status = await fetch(`http://127.0.0.1:${s.httpPort}/api/status`, { headers: { authorization: `Bearer ${s.adminToken}` } }).then(
      (r) => r.json(),
    );
    expect(status.received.objects).toBe(sentCount);
    expect(status.produced.objects).toBe(emitted.length);
    const selfRow = async () => {
      const st = await fetch(`http://127.0.0.1:${s.httpPort}/api/status`, { headers: { authorization: `Bearer ${s.adminToken}` } }).then(
        (r) => r.json(),
      );
      return st.cluster.nodes.find((n: { self: boolean }) => n.self)?.status;
    };
    await expect.poll(async () => (await selfRow())?.produced?.objects, { timeout: 30_000, interval: 200 }).toBe(emitted.length);
    expect((await selfRow()).received.objects).toBe(sentCount);
    const metrics = await fetch(`http://127.0.0.1:${s.httpPort}/api/metrics`, {
      headers: { authorization: `Bearer ${s.adminToken}` },
    }).then((r) => r.text());
    expect(metrics).toMatch(new RegExp(`^dicomflow_received_objects_total ${sentCount}$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^dicomflow_produced_objects_total ${emitted.length}$`, 'm'));

    // The research node has exactly the de-identified copies, and nothing of the patient.
    const received = fs
      .readdirSync(research.dir)
      .filter((n) => !n.startsWith('.'))
      .map((n) => path.join(research.dir, n));
    expect(received).toHaveLength(emitted.length);
    const uids = new Set<string>();
    for (const file of received) {
      const bytes = fs.readFileSync(file);
      for (const v of [PATIENT.patientName, 'Wrenfield', 'Ottoline', PATIENT.patientId, PATIENT.patientBirthDate, PATIENT.accessionNumber])
        expect(bytes.indexOf(v), `${v} in ${file}`).toBe(-1);
      uids.add((await readPart10(file)).sopInstanceUid);
    }
    expect([...uids].sort()).toEqual([...emitted].sort());
    const dumps = await Promise.all(received.map((f) => dumpDataset(f)));
    const studies = new Set(dumps.map((d) => d.StudyInstanceUID));
    const frames = new Set(dumps.map((d) => d.FrameOfReferenceUID));
    const patients = new Set(dumps.map((d) => d.PatientID));
    expect(studies.size).toBe(1);
    expect(frames.size).toBe(1);
    expect(patients.size).toBe(1);
    expect([...studies][0]).not.toBe(pet.studyInstanceUid);
    const pseudonym = String([...patients][0]);
    expect(pseudonym).toMatch(/^ANON[A-Z2-7]{12}$/);

    // Re-identification through the CLI: an admin gets the original, a reader is refused.
    const config = path.join(s.dataDir, 'config.json');
    const lookup = await promisify(execFile)(node, [cli, 'pseudonyms', pseudonym, '--user', 'admin', '--json', '--config', config], {
      timeout: 30_000,
    });
    const rows = JSON.parse(lookup.stdout);
    expect(rows).toMatchObject([{ kind: 'patient', original: `${PATIENT.patientId}\\`, pseudonym, originalName: PATIENT.patientName }]);
    const byId = await promisify(execFile)(node, [cli, 'pseudonyms', PATIENT.patientId, '--user', 'admin', '--json', '--config', config], {
      timeout: 30_000,
    });
    expect(JSON.parse(byId.stdout)).toMatchObject([{ kind: 'patient', pseudonym }]);
    const refused = await promisify(execFile)(node, [cli, 'pseudonyms', pseudonym, '--user', 'rita', '--config', config], {
      timeout: 30_000,
    }).catch((e) => e);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/DF_ERR_FORBIDDEN/);
    // Each lookup that was allowed is in the audit log, with what was asked for.
    const audited = (await s.index.auditLog(20)).filter((a) => a.action === 'pseudonym-read');
    expect(audited.map((a) => a.details.value).sort()).toEqual([PATIENT.patientId, pseudonym].sort());
    expect(audited.every((a) => /\(command line\) as admin$/.test(a.user))).toBe(true);
  }, 240_000);
});
