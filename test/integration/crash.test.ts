// Issue 2, "durable before Success": storescu sends 500 objects on one association, the server is
// killed with SIGKILL mid-transfer, restarted on the same data directory, and every object the
// sender saw acknowledged must be there: indexed, findable, complete, byte for byte.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { dcmdump, findscu, hasTool, parseFindscuResponses } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { spawnServer, tempDir } from '../helpers/server.ts';

const OBJECTS = 500;

interface Transfer {
  /** SOP Instance UIDs storescu logged a Success response for, in order. */
  acknowledged: string[];
  /** Responses other than Success, as storescu names them. */
  otherResponses: string[];
  storescuLog: string;
  /** What ended the transfer before the test's own SIGKILL, if anything did. */
  endedEarly?: string;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopGracefully(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  await exited(child);
}

/**
 * Runs storescu -v over the series and SIGKILLs the server once `killAfterAcks` Success
 * responses were logged, plus a random 0-25 ms (one object takes ~10 ms here) so the kill lands
 * anywhere in an object's cycle: receiving its bytes, fsync, the index commit, or the response.
 * storescu -v logs "Sending file: F" before each request and "Received Store Response (Success)"
 * after it; the file names the SOP instance.
 */
async function sendAndKill(series: BuiltSeries, server: ChildProcess, port: number, killAfterAcks: number): Promise<Transfer> {
  const uidByFile = new Map(series.instances.map((i) => [path.resolve(i.file), i.sopInstanceUid]));
  const storescu = spawn('storescu', ['-v', '-aet', 'CRASHTEST', '-aec', 'DICOMFLOW', '+sd', '127.0.0.1', String(port), series.dir], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const transfer: Transfer = { acknowledged: [], otherResponses: [], storescuLog: '' };
  let sending: string | undefined;
  let pending = '';
  let killScheduled = false;
  let killSent = false;
  const onText = (text: string): void => {
    transfer.storescuLog += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const file = /Sending file: (.*)$/.exec(line)?.[1];
      if (file !== undefined) sending = uidByFile.get(path.resolve(file.trim()));
      const response = /Received Store Response \(([^)]*)\)/.exec(line)?.[1];
      if (response === undefined) continue;
      if (response === 'Success' && sending !== undefined) transfer.acknowledged.push(sending);
      else transfer.otherResponses.push(response);
      sending = undefined;
      if (!killScheduled && transfer.acknowledged.length >= killAfterAcks) {
        killScheduled = true;
        setTimeout(() => {
          killSent = true;
          server.kill('SIGKILL');
        }, Math.random() * 25);
      }
    }
  };
  storescu.stdout.setEncoding('utf8').on('data', onText);
  storescu.stderr.setEncoding('utf8').on('data', onText);
  const storescuDone = exited(storescu);
  const first = await Promise.race([exited(server).then(() => 'server'), storescuDone.then(() => 'storescu')]);
  if (!killSent) {
    transfer.endedEarly =
      first === 'server'
        ? `the server ended on its own (exit code ${server.exitCode}, signal ${server.signalCode})`
        : `storescu ended (exit code ${storescu.exitCode}) before the kill: it failed, or the server aborted the association or died`;
    killSent = true;
    server.kill('SIGKILL');
  }
  await exited(server);
  // storescu sees the connection drop and gives up; never leave it behind.
  const timer = setTimeout(() => storescu.kill('SIGKILL'), 10_000);
  await storescuDone;
  clearTimeout(timer);
  return transfer;
}

describe.skipIf(!hasTool('storescu') || !hasTool('findscu') || !hasTool('dcmdump'))('kill -9 during a C-STORE transfer (issue 2)', () => {
  let fixtureDir: string;
  let series: BuiltSeries;
  const sourceDataset = new Map<string, Buffer>();
  const dataDirs: string[] = [];

  beforeAll(async () => {
    fixtureDir = tempDir('dicomflow-crash-');
    series = await ctSeries(path.join(fixtureDir, 'ct'), { slices: OBJECTS, rows: 64, cols: 64, patientId: 'CRASH-1' });
    for (const instance of series.instances) sourceDataset.set(instance.sopInstanceUid, splitPart10(await readFile(instance.file)).dataset);
  });

  afterAll(async () => {
    if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['early in the transfer', 20],
    ['mid-transfer', 200],
    ['near the end', 440],
  ])('keeps every acknowledged object after a kill %s (%i acknowledged)', async (_, killAfterAcks) => {
    const dataDir = tempDir('dicomflow-crash-data-');
    dataDirs.push(dataDir);
    const port = await freePort();
    const args = ['--data', dataDir, '--port', String(port), '--http-port', String(await freePort())];
    const storage = path.join(dataDir, 'storage');

    const first = await spawnServer(args);
    const transfer = await sendAndKill(series, first.child, port, killAfterAcks);
    const serverWarnings = first
      .output()
      .split('\n')
      .filter((line) => line !== '' && !line.includes('"level":30'));
    const context = `killed after ${transfer.acknowledged.length} acknowledgements\nstorescu: …${transfer.storescuLog.slice(-600)}\nserver warnings: ${serverWarnings.join('\n').slice(-3000)}`;
    expect(transfer.endedEarly, context).toBeUndefined();
    expect(transfer.otherResponses, context).toEqual([]);
    expect(transfer.acknowledged.length, context).toBeGreaterThanOrEqual(killAfterAcks);
    // The kill came while objects were still on their way.
    expect(transfer.acknowledged.length, context).toBeLessThan(OBJECTS);

    const second = await spawnServer(args);
    try {
      expect(fs.readdirSync(path.join(storage, 'incoming')), 'storage/incoming after restart').toEqual([]);

      // What a user sees: every acknowledged instance answers a C-FIND.
      const found = await findscu([
        '-S',
        '-v',
        '-aec',
        'DICOMFLOW',
        '-k',
        'QueryRetrieveLevel=IMAGE',
        '-k',
        `StudyInstanceUID=${series.studyInstanceUid}`,
        '-k',
        `SeriesInstanceUID=${series.seriesInstanceUid}`,
        '-k',
        'SOPInstanceUID',
        '127.0.0.1',
        String(port),
      ]);
      expect(found.code, found.stderr.slice(-2000)).toBe(0);
      expect(found.stderr).toContain('Received Final Find Response (Success)');
      const findable = new Set(parseFindscuResponses(found.stderr).map((r) => r.SOPInstanceUID as string));
      const lost = transfer.acknowledged.filter((uid) => !findable.has(uid));
      expect(lost, `acknowledged but not found by C-FIND (${context})`).toEqual([]);

      // What is on disk: every indexed object is a whole Part 10 file holding exactly the bytes sent.
      const db = new Database(path.join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
      let indexed: { path: string; size: number; sop_instance_uid: string }[];
      try {
        indexed = db
          .prepare('SELECT o.path, o.size, i.sop_instance_uid FROM instances i JOIN objects o ON o.id = i.object_id')
          .all() as typeof indexed;
      } finally {
        db.close();
      }
      const indexedUids = new Set(indexed.map((row) => row.sop_instance_uid));
      expect(
        transfer.acknowledged.filter((uid) => !indexedUids.has(uid)),
        `acknowledged but not in the instances table (${context})`,
      ).toEqual([]);

      const problems: string[] = [];
      const files: string[] = [];
      for (const object of indexed) {
        if (!object.path.startsWith(`objects${path.sep}`))
          problems.push(`${object.sop_instance_uid}: path ${object.path} is not under storage/objects`);
        const file = path.join(storage, object.path);
        const size = await stat(file).then(
          (s) => s.size,
          () => undefined,
        );
        if (size === undefined) {
          problems.push(`${object.sop_instance_uid}: ${object.path} is missing`);
          continue;
        }
        files.push(file);
        // objects.size counts the file as written: the Part 10 header dicomflow adds, then the dataset.
        if (size !== object.size) problems.push(`${object.sop_instance_uid}: ${size} bytes on disk, ${object.size} indexed`);
        const stored = splitPart10(await readFile(file));
        if (stored.sopInstanceUid !== object.sop_instance_uid) problems.push(`${object.path}: meta header names ${stored.sopInstanceUid}`);
        const sent = sourceDataset.get(object.sop_instance_uid);
        if (sent === undefined) problems.push(`${object.sop_instance_uid}: indexed but never sent`);
        else if (!stored.dataset.equals(sent))
          problems.push(
            `${object.sop_instance_uid}: dataset differs from what was sent (${stored.dataset.length} of ${sent.length} bytes)`,
          );
      }
      expect(problems, context).toEqual([]);

      // DCMTK reads each one to the end of its pixel data (exit 1 on a short or damaged file).
      const dumped = await dcmdump(files);
      expect(dumped.code, dumped.stderr.slice(0, 2000)).toBe(0);
    } finally {
      await stopGracefully(second.child);
    }
  });
});
