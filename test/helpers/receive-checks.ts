// What the receive tests look at from outside: files on disk, the index, the HTTP API, and what
// storescu puts on the wire.
import { existsSync, readdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RunningServer } from '../../server/app.ts';
import { startStorescp } from './dcmtk-peers.ts';
import { storescu } from './dcmtk.ts';
import { readPart10, type Part10Parts } from './part10.ts';
import { PduType, PeerClosedError, type RawConnection } from './raw-scu.ts';

/** Every regular file under dir (absolute paths); none if dir does not exist. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

export function objectFiles(dataDir: string): string[] {
  return filesUnder(path.join(dataDir, 'storage', 'objects'));
}

export function incomingFiles(dataDir: string): string[] {
  return filesUnder(path.join(dataDir, 'storage', 'incoming'));
}

export interface StoredObject {
  file: string;
  part10: Part10Parts;
  transferSyntaxUid: string;
}

/**
 * The file the index holds for a SOP Instance UID, read back. Waits (up to timeoutMs) for the
 * instance to be filed, since filing into a database may follow the acknowledgement; throws
 * unless the database then holds exactly one instance with that UID.
 */
export async function storedObject(
  server: RunningServer,
  sopInstanceUid: string,
  database = 'Import',
  timeoutMs = 10_000,
): Promise<StoredObject> {
  const rows = await eventually(
    () => server.index.instances(database, { sopInstanceUids: [sopInstanceUid] }),
    (found) => found.length > 0,
    timeoutMs,
  ).catch(() => []);
  if (rows.length !== 1)
    throw new Error(`database ${database} holds ${rows.length} instances with SOP Instance UID ${sopInstanceUid}, not 1`);
  const file = server.objects.absolutePath(rows[0].objectPath);
  const part10 = await readPart10(file);
  return { file, part10, transferSyntaxUid: rows[0].transferSyntaxUid };
}

/**
 * The data set bytes storescu sends for these files, by SOP Instance UID, captured by storescp
 * in bit-preserving mode. DCMTK re-encodes undefined-length sequences on the way out, so for
 * objects with sequences this, not the source file, is what a receiver must keep.
 */
export async function datasetsOnTheWire(files: readonly string[], storescuArgs: readonly string[] = []): Promise<Map<string, Buffer>> {
  const peer = await startStorescp();
  try {
    const sent = await storescu([...storescuArgs, '-aec', peer.aeTitle, '127.0.0.1', String(peer.port), ...files]);
    if (sent.code !== 0) throw new Error(`storescu to storescp exited with ${sent.code}: ${sent.stderr}`);
  } finally {
    await peer.stop();
  }
  const datasets = new Map<string, Buffer>();
  try {
    for (const name of await readdir(peer.dir)) {
      const parts = await readPart10(path.join(peer.dir, name));
      datasets.set(parts.sopInstanceUid, Buffer.from(parts.dataset));
    }
  } finally {
    await rm(peer.dir, { recursive: true, force: true });
  }
  return datasets;
}

export interface HttpReply {
  status: number;
  body: any;
}

export async function getJson(port: number, route: string, token?: string): Promise<HttpReply> {
  const response = await fetch(`http://127.0.0.1:${port}${route}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: response.status, body: await response.json() };
}

/**
 * How the server ended a connection we broke: 'rejected' (A-ASSOCIATE-RJ) or 'abort' (A-ABORT)
 * if it said so first, 'closed' if it just closed. Any other reply, such as an A-ASSOCIATE-AC or
 * a DIMSE response as if nothing had happened, is an error.
 */
export async function serverEnded(connection: RawConnection, timeoutMs = 10_000): Promise<'rejected' | 'abort' | 'closed'> {
  let pdu;
  try {
    pdu = await connection.readPdu(timeoutMs);
  } catch (error) {
    if (error instanceof PeerClosedError) return 'closed';
    throw error;
  }
  if (pdu.type !== PduType.Abort && pdu.type !== PduType.AssociateRj) {
    throw new Error(`expected A-ASSOCIATE-RJ, A-ABORT or a closed connection, got PDU type 0x${pdu.type.toString(16).padStart(2, '0')}`);
  }
  // PS3.8 9.2.3: after either, the requestor closes the transport connection.
  connection.destroy();
  return pdu.type === PduType.Abort ? 'abort' : 'rejected';
}

/** Polls until check() is true; throws with what it last saw after timeoutMs. */
export async function eventually<T>(read: () => T | Promise<T>, check: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
