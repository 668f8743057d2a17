// The outbox sender's lease renewal against an index that stops answering (a frozen
// PostgreSQL): the renewal under way is waited for, not joined by more; renewals resume once
// the index answers. The send itself hangs on a peer that accepts and never answers.
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { OutboxEntry, OutboxFailure, OutboxStore } from '../../core/store/outbox-store.ts';
import { ctSeries } from '../../test/fixtures/builder.ts';
import { recordingLog } from '../../test/helpers/recording-log.ts';
import { tempDir } from '../../test/helpers/temp.ts';
import { until } from '../../test/helpers/wait.ts';
import { OutboxSender } from './outbox-sender.ts';

const sockets = new Set<net.Socket>();
const silent = net.createServer((socket) => {
  sockets.add(socket);
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
});
afterAll(() => silent.close());

describe('the outbox sender', () => {
  it('renews its leases one renewal at a time while the index stalls, and resumes when it answers', async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const dir = tempDir();
    const ct = await ctSeries(path.join(dir, 'ct'), { slices: 1, rows: 8, cols: 8 });
    const now = new Date().toISOString();
    const entry: OutboxEntry = {
      id: 'e1',
      destination: 'SILENT',
      path: ct.files[0],
      sopClassUid: ct.sopClassUid,
      sopInstanceUid: ct.sopInstanceUids[0],
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      size: 1,
      state: 'sending',
      attempts: 1,
      createdAt: now,
      nextAttemptAt: now,
    };
    const renewals: { ids: string[]; resolve: () => void }[] = [];
    const failed: { id: string; failure: OutboxFailure }[] = [];
    let claims = 0;
    const index = { stalled: true };
    const store = {
      requeueInterrupted: async () => 0,
      removeOrphans: async () => 0,
      claim: async () => (claims++ === 0 ? [entry] : []),
      renewLeases: (_owner: string, ids: string[]) =>
        index.stalled ? new Promise<void>((resolve) => renewals.push({ ids, resolve })) : Promise.resolve(),
      markFailed: async (id: string, failure: OutboxFailure) => void failed.push({ id, failure }),
      markDelivered: async () => {},
      release: async () => {},
      counts: async () => [],
    } as unknown as OutboxStore;
    const { log, lines } = recordingLog();
    const sender = new OutboxSender({
      outbox: store,
      destinations: [
        {
          aeTitle: 'SILENT',
          host: '127.0.0.1',
          port,
          tls: false,
          outbox: { concurrency: 1, maxAttempts: 3, initialRetrySeconds: 60, maxRetrySeconds: 60, batchSize: 10 },
        },
      ],
      callingAeTitle: 'DICOMFLOW',
      log,
      workDir: path.join(dir, 'work'),
      leaseMs: 60,
      responseTimeoutMs: 60_000,
      connectTimeoutMs: 60_000,
    });
    await sender.start();
    try {
      await until('the association requested', () => sockets.size > 0);
      await until('a renewal skipped while the first waits', () =>
        lines.some((l) => l.msg === 'the outbox lease renewal waits for the index; skipped until it answers'),
      );
      expect(renewals).toHaveLength(1);
      expect(renewals[0].ids).toEqual(['e1']);
      renewals[0].resolve();
      await until('renewed again', () => lines.some((l) => l.msg === 'the outbox lease renewal written again'));
      await until('renewals resumed', () => renewals.length >= 2);
    } finally {
      // The peer goes away: the attempt fails (and is recorded), nothing waits any more.
      index.stalled = false;
      for (const r of renewals) r.resolve();
      for (const s of sockets) s.destroy();
      await until('the failed attempt recorded', () => failed.length === 1);
      await sender.close();
    }
    expect(failed[0]).toMatchObject({ id: 'e1', failure: { errorCode: expect.stringMatching(/^DF_ERR_/) } });
  });
});
