import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Logger } from 'pino';
import { DatasetWalker } from '../dicom/dataset-walker.ts';
import { isIndexedTag, readIndexedAttributes } from '../dicom/indexed-attributes.ts';
import { fileMetaHeader, readFileMetaOf } from '../dicom/part10.ts';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE } from '../dicom/transfer-syntaxes.ts';
import { dfError, isDfError, type DfError } from '../errors.ts';
import type { DicomflowEvents } from '../events.ts';
import type { ArrivalFiling, ArrivalSource, DuplicatePolicy, IndexStore, RecordResult } from '../store/index-store.ts';
import type { ObjectStore, ObjectWriter } from '../store/object-store.ts';

export interface IncomingObject {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAeTitle?: string;
}

export interface Provenance {
  source: ArrivalSource;
  database: string;
  createdBy: string;
  callingAeTitle?: string;
  calledAeTitle?: string;
  peerAddress?: string;
  userName?: string;
  associationId?: string;
}

export type ReceptionResult =
  | { ok: true; record: RecordResult; size: number; path: string; sopInstanceUid: string; attributes: Readonly<Record<string, string>> }
  | { ok: false; error: DfError };

export interface ReceiverOptions {
  objects: ObjectStore;
  index: IndexStore;
  events: DicomflowEvents;
  duplicatePolicy: DuplicatePolicy;
  log: Logger;
  /** Checked before an object is accepted; true means the store is too full. */
  storeIsFull: () => boolean;
  /** Attributes to decode into each arrival beside the indexed ones (what conditions test). */
  extraAttributes?: () => ReadonlyMap<number, { keyword: string; vr: string }>;
  /** Filing on arrival (the engine's filing-only pipelines): filed in the arrival's own commit. */
  filing?: ArrivalFiling;
}

/**
 * Counters for the status page; kept in memory since start. "Received" is what came in from
 * outside (network, import, watch folders, replication, DICOMweb STOW); objects a pipeline
 * produced and filed are counted apart, so derived instances do not inflate what was sent.
 */
export class ReceiveStats {
  objectsReceived = 0;
  bytesReceived = 0;
  objectsProduced = 0;
  bytesProduced = 0;
  failures = 0;
  duplicates = 0;
  lastArrivalAt: string | undefined;
}

// PS3.5 9.1 UIDs are digits and dots; real modalities sometimes send worse (letters, a trailing
// dot), and we keep those too. What we refuse is what no UID can be: empty, too long, control
// characters, a backslash (which would make it multi-valued), and what reads as a path: a slash,
// or dots alone ("..") — steps such as motion-correction name output folders after series UIDs.
const ACCEPTABLE_UID = /^(?!\.+$)[!-.0-[\]-~]{1,64}$/;

/**
 * The one way into storage, whatever the source: the Part 10 header and the dataset's bytes go
 * to disk as they come, the dataset is checked while it streams, and only after fsync and the
 * index commit is the object acknowledged and announced.
 */
export class Receiver {
  readonly stats = new ReceiveStats();
  private readonly options: ReceiverOptions;

  constructor(options: ReceiverOptions) {
    this.options = options;
  }

  begin(incoming: IncomingObject): Reception {
    return new Reception(this, this.options, incoming);
  }

  /**
   * A Part 10 file from disk (import, watch folder, pipeline output) through the same path as
   * the network: its dataset bytes are kept as they are, after a fresh file meta header.
   */
  async receiveFile(file: string, provenance: Provenance): Promise<ReceptionResult> {
    let meta: Awaited<ReturnType<typeof readFileMetaOf>>;
    const handle = await fs.promises.open(file, 'r');
    try {
      try {
        meta = await readFileMetaOf(handle);
      } catch (err) {
        return {
          ok: false,
          error: dfError('DF_ERR_DATASET_MALFORMED', `${path.basename(file)}: ${(err as Error).message}`, { cause: err }),
        };
      }
      const reception = this.begin({ ...meta, sourceAeTitle: provenance.callingAeTitle });
      try {
        for await (const chunk of handle.createReadStream({ start: meta.datasetOffset, autoClose: false, highWaterMark: 256 * 1024 })) {
          reception.write(chunk as Buffer);
        }
      } catch (err) {
        // A read that fails half way leaves no partial file behind (nor its descriptor).
        await reception.abort();
        throw err;
      }
      return await reception.finish(provenance);
    } finally {
      await handle.close();
    }
  }
}

export class Reception {
  private readonly receiver: Receiver;
  private readonly options: ReceiverOptions;
  private readonly incoming: IncomingObject;
  private readonly writer: ObjectWriter | undefined;
  private readonly walker: DatasetWalker | undefined;
  private readonly inflater: zlib.InflateRaw | undefined;
  private earlyError: DfError | undefined;
  private datasetBytes = 0;
  private extraAttributes: ReadonlyMap<number, { keyword: string; vr: string }> | undefined;

  constructor(receiver: Receiver, options: ReceiverOptions, incoming: IncomingObject) {
    this.receiver = receiver;
    this.options = options;
    this.incoming = incoming;
    if (options.storeIsFull()) {
      this.earlyError = dfError('DF_ERR_STORE_FULL', 'the storage root is below its free-space reserve (storage.minFreeMegabytes)');
      return;
    }
    const ts = incoming.transferSyntaxUid;
    const extra = options.extraAttributes?.();
    this.extraAttributes = extra;
    // Only what the index row and conditions read is kept of the dataset (the rest is garbage per object).
    this.walker = new DatasetWalker({
      explicitVr: ts !== IMPLICIT_VR_LE,
      littleEndian: ts !== EXPLICIT_VR_BE,
      capture: (tag) => isIndexedTag(tag) || (extra?.has(tag) ?? false),
    });
    if (ts === DEFLATED_EXPLICIT_VR_LE) {
      // The bytes are kept deflated as they came; the walker checks the inflated stream.
      this.inflater = zlib.createInflateRaw();
      this.inflater.on('data', (chunk: Buffer) => this.walk(chunk));
      this.inflater.on('error', (err) => {
        this.earlyError ??= dfError('DF_ERR_DATASET_MALFORMED', `deflated dataset does not inflate: ${err.message}`, { cause: err });
      });
    }
    this.writer = options.objects.beginWrite();
    this.writer.write(fileMetaHeader(incoming));
  }

  write(chunk: Buffer): void {
    if (this.earlyError || !this.writer) return;
    this.datasetBytes += chunk.length;
    this.writer.write(chunk);
    if (this.inflater) this.inflater.write(chunk);
    else this.walk(chunk);
  }

  private walk(chunk: Buffer): void {
    if (this.earlyError || !this.walker) return;
    try {
      this.walker.push(chunk);
    } catch (err) {
      this.earlyError = toDfError(err);
    }
  }

  /**
   * Completes the object; resolves with what to answer the sender. Never rejects. `check` may
   * refuse the object on its attributes before anything is indexed (STOW-RS to one study).
   */
  async finish(
    provenance: Provenance,
    check?: (attributes: Readonly<Record<string, string>>) => DfError | undefined,
  ): Promise<ReceptionResult> {
    const { log } = this.options;
    const stats = this.receiver.stats;
    const logContext = { sopInstanceUid: this.incoming.sopInstanceUid, associationId: provenance.associationId, source: provenance.source };
    let indexed = false;
    try {
      if (this.inflater) await new Promise<void>((resolve) => this.inflater!.end(resolve));
      if (this.earlyError) throw this.earlyError;
      if (!this.writer || !this.walker) throw dfError('DF_ERR_STORE_WRITE', 'no writer');
      await this.writer.allWritten();
      if (this.writer.error) throw this.writer.error;
      const elements = this.walker.end();
      const attributes = readIndexedAttributes(elements, this.incoming.transferSyntaxUid !== EXPLICIT_VR_BE, this.extraAttributes);
      this.checkIdentity(attributes);
      const refusal = check?.(attributes);
      if (refusal) throw refusal;
      const relativePath = this.writer.place();
      // The object's fsync starts now and runs while the index commits (durably: recordReceived
      // resolves once its commit reached the disk).
      const objectSynced = this.writer.sync();
      objectSynced.catch(() => {});
      const receivedAt = new Date().toISOString();
      let record: RecordResult;
      try {
        record = await this.options.index.recordReceived(
          {
            objectId: this.writer.id,
            path: relativePath,
            size: this.writer.size,
            transferSyntaxUid: this.incoming.transferSyntaxUid,
            sopClassUid: this.incoming.sopClassUid,
            sopInstanceUid: this.incoming.sopInstanceUid,
            attributes,
            receivedAt,
            ...provenance,
          },
          this.options.duplicatePolicy,
          this.options.filing,
        );
      } catch (err) {
        // Committed but not made durable: its row points at this file, which stays.
        if ((err as { committed?: boolean }).committed === true) indexed = true;
        throw dfError('DF_ERR_STORE_WRITE', `cannot index the object: ${(err as Error).message}`, { cause: err });
      }
      indexed = true;
      const keepsBytes = record.outcome === 'received';
      // The object, its directory entry and the index row reach the disk together; only then
      // is the sender told Success. A power loss in between can leave an unacknowledged row
      // whose file is short: start-up after an unclean stop checks recent objects.
      await objectSynced;
      if (!keepsBytes) await this.writer.discard();
      if (!keepsBytes) {
        stats.duplicates++;
        log.info({ ...logContext, outcome: record.outcome }, 'duplicate SOP Instance UID');
      }
      if (provenance.source === 'pipeline') {
        stats.objectsProduced++;
        stats.bytesProduced += this.datasetBytes;
      } else {
        stats.objectsReceived++;
        stats.bytesReceived += this.datasetBytes;
      }
      stats.lastArrivalAt = receivedAt;
      if (record.outcome === 'duplicate-rejected') {
        return { ok: false, error: dfError('DF_ERR_DUPLICATE_REJECTED', `SOP Instance ${this.incoming.sopInstanceUid} is already stored`) };
      }
      this.options.events.announce('InstanceReceived', {
        id: record.arrivalId,
        objectId: record.objectId,
        path: record.path,
        absolutePath: this.options.objects.absolutePath(record.path),
        receivedAt,
        source: provenance.source,
        callingAeTitle: provenance.callingAeTitle,
        calledAeTitle: provenance.calledAeTitle,
        peerAddress: provenance.peerAddress,
        database: provenance.database,
        associationId: provenance.associationId,
        userName: provenance.userName,
        outcome: record.outcome,
        filedBy: record.filedBy,
        settled: record.settled,
        sopClassUid: this.incoming.sopClassUid,
        sopInstanceUid: this.incoming.sopInstanceUid,
        seriesInstanceUid: attributes.SeriesInstanceUID,
        studyInstanceUid: attributes.StudyInstanceUID,
        attributes,
      });
      return { ok: true, record, size: this.writer.size, path: record.path, sopInstanceUid: this.incoming.sopInstanceUid, attributes };
    } catch (err) {
      const error = toDfError(err);
      stats.failures++;
      // Once indexed, the object is valid and stays; the sender is told of the failure and resends.
      if (!indexed) await this.writer?.discard();
      log.warn({ ...logContext, code: error.code, err: error.message }, 'object refused');
      return { ok: false, error };
    }
  }

  /** The association or import broke off: nothing was acknowledged, nothing is kept. */
  async abort(): Promise<void> {
    this.inflater?.destroy();
    await this.writer?.discard();
  }

  private checkIdentity(attributes: Record<string, string>): void {
    const { sopClassUid, sopInstanceUid } = this.incoming;
    for (const [name, uid] of [
      ['SOP Instance UID', sopInstanceUid],
      ['SOP Class UID', sopClassUid],
      ['Study Instance UID', attributes.StudyInstanceUID],
      ['Series Instance UID', attributes.SeriesInstanceUID],
    ] as const) {
      if (uid === undefined || uid === '') {
        throw dfError('DF_ERR_DATASET_INCOMPLETE', `the dataset has no ${name}`);
      }
      if (!ACCEPTABLE_UID.test(uid)) throw dfError('DF_ERR_UID_INVALID', `${name} "${uid.slice(0, 80)}" is not a usable UID`);
    }
    if (attributes.SOPInstanceUID !== sopInstanceUid) {
      throw dfError(
        'DF_ERR_DATASET_MISMATCH',
        `the dataset's SOP Instance UID "${attributes.SOPInstanceUID ?? ''}" differs from the command's "${sopInstanceUid}"`,
      );
    }
    if (attributes.SOPClassUID !== sopClassUid) {
      throw dfError(
        'DF_ERR_DATASET_MISMATCH',
        `the dataset's SOP Class UID "${attributes.SOPClassUID ?? ''}" differs from the command's "${sopClassUid}"`,
      );
    }
  }
}

function toDfError(err: unknown): DfError {
  if (isDfError(err)) return err;
  return dfError('DF_ERR_STORE_WRITE', (err as Error).message ?? String(err), { cause: err });
}
