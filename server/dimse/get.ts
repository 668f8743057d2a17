import fs from 'node:fs/promises';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { readFileMetaOf, type FileMeta } from '../../core/dicom/part10.ts';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import type { QuerySource } from '../../core/store/index-store.ts';
import type { ObjectStore } from '../../core/store/object-store.ts';
import { selectObjects } from './move.ts';
import { DatasetPdvSender } from './dataset-pdvs.ts';
import { RetrieveStatus } from './retrieve-status.ts';
import {
  CommandField,
  PdvControl,
  Priority,
  decodeCommand,
  encodeCommand,
  encodePData,
  statusCategory,
  type DimseCommand,
} from './upper-layer.ts';

const { responses, Dataset } = dimse;
const { CGetResponse } = responses;
type CGetRequest = InstanceType<typeof dimse.requests.CGetRequest>;
type CGetResponseT = InstanceType<typeof CGetResponse>;

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

// PS3.8 9.3.5: a P-DATA-TF's length counts the PDV item header (4 + 2 bytes) and the value.
const PDV_HEADER_BYTES = 6;
// A peer announcing no max PDU (0, PS3.8 D.1) still gets fragments of a sane size.
const UNLIMITED_PEER_FRAGMENT_BYTES = 1 << 20;
const READ_BLOCK_BYTES = 1 << 20;
// Our requests' message IDs live in the upper half: the peer numbers its own requests, and
// only responses to ours are taken from the stream before dcmjs-dimse sees it.
const FIRST_MESSAGE_ID = 0x8000;

/** An accepted storage context on which the peer took the SCP role (PS3.7 D.3.3.4). */
export interface StorageContext {
  id: number;
  abstractSyntax: string;
  transferSyntax: string;
}

export interface SubOperationResult {
  outcome: 'success' | 'warning' | 'failure';
  sopInstanceUid?: string;
  /** Why a sub-operation was not performed (a peer's refusal has only `error`). */
  code?: 'DF_ERR_CONTEXT_REJECTED' | 'DF_ERR_FILE_READ';
  error?: string;
}

/** Where a C-GET's sub-operations go: C-STORE requests back to the peer. */
export interface SubOperationChannel {
  store(file: string): Promise<SubOperationResult>;
}

/**
 * C-STORE requests from us to the peer on the association it opened for C-GET (PS3.4 C.4.3.3).
 * dcmjs-dimse never sees them: commands are encoded here, the stored dataset bytes go out as
 * they are on disk, and the C-STORE-RSPs are taken from the PDU framer by `consume`.
 */
export class GetStoreChannel implements SubOperationChannel {
  private readonly write: (parts: Buffer[], written?: () => void) => Promise<void>;
  private readonly fragmentBytes: number;
  /**
   * Made at the first sub-operation: its two 1 MB read blocks are off-heap memory that V8 counts
   * against the old generation's limit, so made for every association (most never C-GET) they
   * started a full collection every four or five associations.
   */
  private datasetSender: DatasetPdvSender | undefined;
  private readonly contexts: readonly StorageContext[];
  private readonly waiting = new Map<number, { resolve(command: DimseCommand): void; reject(err: Error): void }>();
  private nextMessageId = FIRST_MESSAGE_ID;
  private closedBecause: Error | undefined;

  /** `write` calls `written` once the socket is done with the last part (or at once if it writes nothing). */
  constructor(o: {
    write(parts: Buffer[], written?: () => void): Promise<void>;
    peerMaxPduLength: number;
    contexts: readonly StorageContext[];
  }) {
    this.write = o.write;
    this.fragmentBytes = o.peerMaxPduLength === 0 ? UNLIMITED_PEER_FRAGMENT_BYTES : o.peerMaxPduLength - PDV_HEADER_BYTES;
    this.contexts = o.contexts;
  }

  /** A command set from the peer: true if it answers one of our requests (and is now handled). */
  consume(commandBytes: Buffer): boolean {
    if (this.waiting.size === 0) return false;
    let command: DimseCommand;
    try {
      command = decodeCommand(commandBytes);
    } catch {
      return false; // dcmjs-dimse meets it and aborts
    }
    const waiter = command.CommandField === CommandField.CStoreRsp ? this.waiting.get(command.MessageIDBeingRespondedTo ?? -1) : undefined;
    if (!waiter) return false;
    this.waiting.delete(command.MessageIDBeingRespondedTo!);
    waiter.resolve(command);
    return true;
  }

  /** Whether a C-STORE of ours waits for the peer's response (the association's DIMSE timer runs then). */
  awaitingPeer(): boolean {
    return this.waiting.size > 0;
  }

  /** The association is gone: what is outstanding fails, and nothing more is sent. */
  close(reason: Error): void {
    this.closedBecause ??= reason;
    for (const waiter of this.waiting.values()) waiter.reject(reason);
    this.waiting.clear();
  }

  async store(file: string): Promise<SubOperationResult> {
    let handle: fs.FileHandle | undefined;
    let meta: (FileMeta & { datasetOffset: number }) | undefined;
    let started = false;
    try {
      handle = await fs.open(file, 'r');
      meta = await readFileMetaOf(handle);
      const { size } = await handle.stat();
      const context = this.contexts.find((c) => c.abstractSyntax === meta!.sopClassUid && c.transferSyntax === meta!.transferSyntaxUid);
      if (!context) {
        // No transcoding: the object goes in the syntax it was stored in, or not at all.
        return {
          outcome: 'failure',
          sopInstanceUid: meta.sopInstanceUid,
          code: 'DF_ERR_CONTEXT_REJECTED',
          error: `no context for ${meta.sopClassUid} in ${meta.transferSyntaxUid} with the SCP role`,
        };
      }
      if (this.closedBecause) throw this.closedBecause;
      const messageId = this.messageId();
      const response = new Promise<DimseCommand>((resolve, reject) => this.waiting.set(messageId, { resolve, reject }));
      response.catch(() => undefined);
      const command = encodeCommand({
        AffectedSOPClassUID: meta.sopClassUid,
        CommandField: CommandField.CStoreRq,
        MessageID: messageId,
        Priority: Priority.Medium,
        CommandDataSetType: 0x0000,
        AffectedSOPInstanceUID: meta.sopInstanceUid,
      });
      // Nothing else is written meanwhile: with no asynchronous operations negotiated the peer
      // sends no other request during a C-GET, and its C-RetrieveStatus.Cancel is answered by the final response.
      started = true;
      await this.write([encodePData(context.id, PdvControl.Command | PdvControl.Last, command)]);
      await this.sendDataset(handle, context.id, meta.datasetOffset, size - meta.datasetOffset);
      const answer = await response;
      const status = answer.Status ?? RetrieveStatus.UnableToProcess;
      const category = statusCategory(status);
      const outcome = category === 'success' || category === 'warning' ? category : 'failure';
      return {
        outcome,
        sopInstanceUid: meta.sopInstanceUid,
        error:
          outcome === 'success'
            ? undefined
            : `C-STORE status 0x${status.toString(16).padStart(4, '0')}${answer.ErrorComment ? `: ${answer.ErrorComment}` : ''}`,
      };
    } catch (err) {
      // Half a message cannot be taken back (PS3.8 has no cancel for it): the caller aborts.
      if (started || err === this.closedBecause) throw err;
      return {
        outcome: 'failure',
        sopInstanceUid: meta?.sopInstanceUid,
        code: 'DF_ERR_FILE_READ',
        error: `cannot read ${file}: ${(err as Error).message}`,
      };
    } finally {
      await handle?.close();
    }
  }

  private messageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = id === 0xffff ? FIRST_MESSAGE_ID : id + 1;
    return id;
  }

  /** Bytes [offset, offset+length) of the file as data PDVs within the peer's max PDU. */
  private async sendDataset(handle: fs.FileHandle, contextId: number, offset: number, length: number): Promise<void> {
    this.datasetSender ??= new DatasetPdvSender(this.fragmentBytes, READ_BLOCK_BYTES);
    await this.datasetSender.send({
      handle,
      contextId,
      offset,
      length,
      write: this.write,
      readError: (message, cause) => new Error(message, { cause }),
    });
  }
}

/**
 * C-GET SCP (PS3.4 C.4.3): the objects an identifier names go back to the requestor on its own
 * association, one C-STORE sub-operation each, with a pending response after each.
 */
export class GetService {
  private readonly objects: ObjectStore;

  constructor(objects: ObjectStore) {
    this.objects = objects;
  }

  async answer(
    request: CGetRequest,
    c: { source: QuerySource; identifier: Record<string, unknown>; log: Logger; cancelled(): boolean },
    channel: SubOperationChannel,
    send: { pending(response: CGetResponseT): void; final(response: CGetResponseT): void },
  ): Promise<void> {
    const response = (status: number, counts: { remaining?: number; completed: number; failed: number; warnings: number }) => {
      const r = CGetResponse.fromRequest(request);
      r.setStatus(status);
      r.setRemaining(counts.remaining ?? 0);
      r.setCompleted(counts.completed);
      r.setFailures(counts.failed);
      r.setWarnings(counts.warnings);
      return r;
    };
    const final = (
      status: number,
      counts: { remaining?: number; completed: number; failed: number; warnings: number },
      comment?: string,
      failedUids?: string[],
    ) => {
      const r = response(status, counts);
      if (comment) r.setErrorComment(comment.slice(0, 64));
      // PS3.4 C.4.3.1.3.1: a response with failures lists them in Failed SOP Instance UID List.
      if (failedUids && failedUids.length > 0) r.setDataset(new Dataset({ FailedSOPInstanceUIDList: failedUids }, EXPLICIT_VR_LE));
      send.final(r);
    };
    const counts = { completed: 0, failed: 0, warnings: 0 };
    const model =
      request.getAffectedSopClassUid() === queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelGet ? 'PATIENT' : 'STUDY';
    let selected;
    try {
      selected = await selectObjects(c.source, this.objects, model, c.identifier);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      c.log.warn(
        { code: typeof code === 'string' && code.startsWith('DF_ERR_') ? code : 'DF_ERR_QUERY_INVALID', err: (err as Error).message },
        'C-GET refused: cannot select the objects',
      );
      return final(RetrieveStatus.UnableToProcess, counts, (err as Error).message);
    }
    if ('error' in selected) {
      c.log.warn({ code: 'DF_ERR_QUERY_INVALID', reason: selected.error }, 'C-GET refused: identifier does not match');
      return final(RetrieveStatus.IdentifierDoesNotMatch, counts, selected.error);
    }
    const total = selected.files.length;
    const failedUids: string[] = [];
    let firstError: string | undefined;
    for (const [i, file] of selected.files.entries()) {
      if (c.cancelled()) {
        c.log.info({ ...counts, total }, 'C-GET cancelled');
        return final(RetrieveStatus.Cancel, { ...counts, remaining: total - i }, undefined, failedUids);
      }
      const result = await channel.store(file);
      if (result.outcome === 'success') counts.completed++;
      else if (result.outcome === 'warning') counts.warnings++;
      else {
        counts.failed++;
        if (result.sopInstanceUid) failedUids.push(result.sopInstanceUid);
        firstError ??= result.error;
        c.log.warn({ code: result.code, sopInstanceUid: result.sopInstanceUid, reason: result.error }, 'C-GET sub-operation failed');
      }
      if (i + 1 < total) send.pending(response(RetrieveStatus.Pending, { ...counts, remaining: total - i - 1 }));
    }
    c.log.info({ ...counts, total }, 'C-GET done');
    if (counts.failed === 0 && counts.warnings === 0) return final(RetrieveStatus.Success, counts);
    if (counts.completed + counts.warnings === 0) return final(RetrieveStatus.UnableToPerformSubOperations, counts, firstError, failedUids);
    return final(RetrieveStatus.SubOperationsWithFailures, counts, firstError, failedUids);
  }
}
