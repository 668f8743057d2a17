// A whole reception when the index's commit cannot be made durable (SQLite: the WAL fsync after
// COMMIT fails). The rows are committed and point at the object's file, so the file must stay;
// the sender is told of the failure and resends, which the duplicate policy then meets.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ctSeries } from '../../test/fixtures/builder.ts';
import { tempDir } from '../../test/helpers/temp.ts';
import { DicomflowEvents } from '../events.ts';
import { ObjectStore } from '../store/object-store.ts';
import { openIndexDatabase } from '../store/sql/open.ts';
import { SqlIndex } from '../store/sql/sql-index.ts';
import { Receiver } from './receive.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function openReceiver(): Promise<{ receiver: Receiver; index: SqlIndex; objects: ObjectStore }> {
  const dataDir = tempDir('df-receive-');
  const objects = new ObjectStore(path.join(dataDir, 'storage'));
  const index = new SqlIndex(await openIndexDatabase({ dataDir }));
  closers.push(async () => {
    objects.close();
    await index.close();
  });
  const log = pino({ level: 'silent' });
  const receiver = new Receiver({
    objects,
    index,
    events: new DicomflowEvents(log),
    duplicatePolicy: 'keep-first',
    log,
    storeIsFull: () => false,
  });
  return { receiver, index, objects };
}

const provenance = { source: 'network' as const, database: 'Import', createdBy: 'MODALITY', callingAeTitle: 'MODALITY' };

describe('Reception', () => {
  it('keeps the file of an object whose rows were committed but not made durable, and answers failure', async () => {
    const { receiver, index, objects } = await openReceiver();
    const series = await ctSeries(tempDir('df-receive-src-'), { slices: 2, rows: 16, cols: 16 });
    const db = index.connection;
    const syncDurable = db.syncDurable.bind(db);
    db.syncDurable = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));

    const failed = await receiver.receiveFile(series.files[0], provenance);
    expect(failed.ok).toBe(false);
    if (failed.ok) return;
    expect(failed.error.code).toBe('DF_ERR_STORE_WRITE');
    expect(failed.error.message).toMatch(/cannot index the object/);
    expect(receiver.stats.failures).toBe(1);

    // The committed row points at a file that is there, byte for byte the dataset that came.
    const rows = await db.all<{ path: string; size: number }>(
      'SELECT path, size FROM objects WHERE sop_instance_uid = ?',
      series.sopInstanceUids[0],
    );
    expect(rows).toHaveLength(1);
    const kept = fs.readFileSync(objects.absolutePath(rows[0].path));
    expect(kept.length).toBe(Number(rows[0].size));
    const sent = fs.readFileSync(series.files[0]);
    expect(kept.subarray(kept.length - 1000).equals(sent.subarray(sent.length - 1000))).toBe(true);
    expect(fs.readdirSync(path.join(objects.root, 'incoming'))).toEqual([]);

    // The disk is back: the sender's resend is received (a duplicate of the kept copy), and the next object too.
    db.syncDurable = syncDurable;
    const resent = await receiver.receiveFile(series.files[0], provenance);
    expect(resent.ok).toBe(true);
    const next = await receiver.receiveFile(series.files[1], provenance);
    expect(next.ok).toBe(true);
    const stored = await db.all<{ sop_instance_uid: string }>('SELECT DISTINCT sop_instance_uid FROM objects ORDER BY sop_instance_uid');
    expect(stored.map((r) => r.sop_instance_uid).sort()).toEqual([...series.sopInstanceUids].sort());
  });
});
