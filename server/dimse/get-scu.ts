import type { Socket } from 'node:net';
import { queryRetrieveSopClasses, storageSopClasses } from '../../core/dicom/sop-classes.ts';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { dfError } from '../../core/errors.ts';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import type { Provenance, Receiver } from '../../core/receive/receive.ts';
import {
  CommandField,
  NO_DATA_SET,
  PduReader,
  PduType,
  PdvControl,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeCommand,
  decodePData,
  describeAbort,
  describeRejection,
  encodeAssociateRq,
  encodeCommand,
  encodePData,
  encodeReleaseRq,
  type ProposedContext,
} from './upper-layer.ts';
import { checkAeTitle, connect, peerLabel, type PeerAddress } from './store-scu.ts';

export interface GetRequest extends PeerAddress {
  /** Unique keys only (PS3.4 C.4.3.2.1), e.g. { QueryRetrieveLevel: 'STUDY', StudyInstanceUID }. */
  identifier: Record<string, string>;
  receiver: Receiver;
  provenance: Provenance;
  timeoutMs?: number;
  onProgress?: (p: { completed: number; failed: number; warnings: number; remaining?: number }) => void;
}

export interface GetResult {
  status: number;
  completed: number;
  failed: number;
  warnings: number;
}

// Common storage SOP classes first: an association holds at most 128 presentation contexts, one
// goes to C-GET, and each class gets two (explicit and implicit VR little endian).
const PREFERRED = [
  'CTImageStorage',
  'MRImageStorage',
  'PositronEmissionTomographyImageStorage',
  'SecondaryCaptureImageStorage',
  'EnhancedCTImageStorage',
  'EnhancedMRImageStorage',
  'EnhancedPETImageStorage',
  'NuclearMedicineImageStorage',
  'ComputedRadiographyImageStorage',
  'DigitalXRayImageStorageForPresentation',
  'UltrasoundImageStorage',
  'UltrasoundMultiFrameImageStorage',
  'XRayAngiographicImageStorage',
  'DigitalMammographyXRayImageStorageForPresentation',
  'SegmentationStorage',
  'RTStructureSetStorage',
  'RTDoseStorage',
  'RTPlanStorage',
  'RTImageStorage',
  'GrayscaleSoftcopyPresentationStateStorage',
  'BasicTextSRStorage',
  'EnhancedSRStorage',
  'ComprehensiveSRStorage',
  'EncapsulatedPDFStorage',
  'MultiFrameTrueColorSecondaryCaptureImageStorage',
  'MultiFrameGrayscaleWordSecondaryCaptureImageStorage',
  'MultiFrameGrayscaleByteSecondaryCaptureImageStorage',
  'VLPhotographicImageStorage',
  'RawDataStorage',
  'SpatialRegistrationStorage',
  'DeformableSpatialRegistrationStorage',
  'KeyObjectSelectionDocumentStorage',
];

function proposals(): { contexts: ProposedContext[]; storageClasses: string[] } {
  const uids = PREFERRED.map((k) => storageSopClasses.find((c) => c.keyword === k)?.uid).filter((u): u is string => u !== undefined);
  const storageClasses = uids.slice(0, 63);
  const contexts: ProposedContext[] = [
    {
      id: 1,
      abstractSyntax: queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelGet,
      transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
    },
  ];
  let id = 3;
  for (const uid of storageClasses) {
    for (const ts of [EXPLICIT_VR_LE, IMPLICIT_VR_LE]) {
      contexts.push({ id, abstractSyntax: uid, transferSyntaxes: [ts] });
      id += 2;
    }
  }
  return { contexts, storageClasses };
}

/** The C-STORE SCU's connection: AE titles checked, connect timeout, TLS, errors in words. */
async function openSocket(r: PeerAddress): Promise<Socket> {
  checkAeTitle('calling', r.callingAeTitle);
  checkAeTitle('called', r.calledAeTitle);
  return connect(r, peerLabel(r));
}

/** A tiny little endian writer for the identifier's string keys (UIDs, CS, LO). */
function encodeIdentifier(identifier: Record<string, string>, implicitVr = false): Buffer {
  const keys: Record<string, [number, string, string]> = {
    QueryRetrieveLevel: [0x00080052, 'CS', ' '],
    PatientID: [0x00100020, 'LO', ' '],
    StudyInstanceUID: [0x0020000d, 'UI', '\0'],
    SeriesInstanceUID: [0x0020000e, 'UI', '\0'],
    SOPInstanceUID: [0x00080018, 'UI', '\0'],
  };
  const elements = Object.entries(identifier)
    .map(([k, v]) => {
      const key = keys[k];
      if (!key) throw new Error(`${k} is not a retrieve key`);
      return { tag: key[0], vr: key[1], pad: key[2], value: v };
    })
    .sort((a, b) => a.tag - b.tag);
  return Buffer.concat(
    elements.map((e) => {
      let value = Buffer.from(e.value, 'latin1');
      if (value.length % 2 === 1) value = Buffer.concat([value, Buffer.from(e.pad, 'latin1')]);
      const head = Buffer.alloc(8);
      head.writeUInt16LE(e.tag >>> 16, 0);
      head.writeUInt16LE(e.tag & 0xffff, 2);
      if (implicitVr) head.writeUInt32LE(value.length, 4);
      else {
        head.write(e.vr, 4, 'latin1');
        head.writeUInt16LE(value.length, 6);
      }
      return Buffer.concat([head, value]);
    }),
  );
}

/**
 * C-GET SCU (PS3.4 C.4.3): retrieves from a remote node on one association, receiving the
 * C-STORE sub-operations ourselves (SCP role) and writing each object through the receiver, as
 * its bytes came, with the provenance given (replication by a user).
 */
export async function retrieveWithGet(r: GetRequest): Promise<GetResult> {
  const { contexts, storageClasses } = proposals();
  const timeoutMs = r.timeoutMs ?? 60_000;
  const socket = await openSocket(r);
  return new Promise((resolve, reject) => {
    const reader = new PduReader(0);
    const counts = { completed: 0, failed: 0, warnings: 0 };
    const transferSyntaxOf = new Map<number, string>();
    let phase: 'associating' | 'getting' | 'releasing' = 'associating';
    let commandParts: Buffer[] = [];
    let reception: ReturnType<Receiver['begin']> | undefined;
    let store: { contextId: number; messageId: number; sopClassUid: string; sopInstanceUid: string } | undefined;
    let finalStatus: number | undefined;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void reception?.abort();
      socket.destroy();
      reject(err);
    };
    let timer = setTimeout(
      () => fail(dfError('DF_ERR_PEER_TIMEOUT', `${r.calledAeTitle} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(dfError('DF_ERR_PEER_TIMEOUT', `${r.calledAeTitle} did not answer within ${timeoutMs} ms`)), timeoutMs);
    };
    socket.write(
      encodeAssociateRq({
        callingAeTitle: r.callingAeTitle,
        calledAeTitle: r.calledAeTitle,
        contexts,
        maxPduLength: 0,
        roleSelections: storageClasses.map((sopClassUid) => ({ sopClassUid, scuRole: false, scpRole: true })),
      }),
    );
    socket.on('error', (err) =>
      fail(dfError('DF_ERR_ASSOCIATION_ABORTED', `the connection to ${peerLabel(r)} failed: ${err.message}`, { cause: err })),
    );
    socket.on('close', () => {
      if (!settled && phase !== 'releasing')
        fail(dfError('DF_ERR_ASSOCIATION_ABORTED', `${r.calledAeTitle} closed the connection during the retrieve`));
    });
    const onStoreCommand = (command: ReturnType<typeof decodeCommand>, contextId: number) => {
      const sopClassUid = String(command.AffectedSOPClassUID ?? '');
      const sopInstanceUid = String(command.AffectedSOPInstanceUID ?? '');
      store = { contextId, messageId: Number(command.MessageID), sopClassUid, sopInstanceUid };
      reception = r.receiver.begin({
        sopClassUid,
        sopInstanceUid,
        transferSyntaxUid: transferSyntaxOf.get(contextId) ?? EXPLICIT_VR_LE,
        sourceAeTitle: r.calledAeTitle,
      });
    };
    const finishStore = async () => {
      const s = store!;
      const result = await reception!.finish(r.provenance);
      reception = undefined;
      store = undefined;
      const status = result.ok ? 0x0000 : 0xa700;
      if (result.ok) counts.completed++;
      else counts.failed++;
      const rsp = encodeCommand({
        AffectedSOPClassUID: s.sopClassUid,
        CommandField: CommandField.CStoreRsp,
        MessageIDBeingRespondedTo: s.messageId,
        CommandDataSetType: NO_DATA_SET,
        Status: status,
        AffectedSOPInstanceUID: s.sopInstanceUid,
      });
      socket.write(encodePData(s.contextId, PdvControl.Command | PdvControl.Last, rsp));
      r.onProgress?.({ ...counts });
    };
    let queue = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      alive();
      let pdus;
      try {
        pdus = reader.push(chunk);
      } catch (err) {
        return fail(err as Error);
      }
      for (const pdu of pdus) {
        if (pdu.type === PduType.AssociateAc && phase === 'associating') {
          const ac = decodeAssociateAc(pdu.body, contexts);
          for (const c of ac.contexts) if (c.result === 0 && c.transferSyntax) transferSyntaxOf.set(c.id, c.transferSyntax);
          const getContext = ac.contexts.find((c) => c.id === 1 && c.result === 0);
          if (!getContext) return fail(dfError('DF_ERR_CONTEXT_REJECTED', `${r.calledAeTitle} does not accept Study Root C-GET`));
          phase = 'getting';
          const command = encodeCommand({
            AffectedSOPClassUID: queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelGet,
            CommandField: CommandField.CGetRq,
            MessageID: 1,
            Priority: 0,
            CommandDataSetType: 0x0000,
          });
          socket.write(encodePData(1, PdvControl.Command | PdvControl.Last, command));
          socket.write(encodePData(1, PdvControl.Last, encodeIdentifier(r.identifier)));
        } else if (pdu.type === PduType.AssociateRj) {
          return fail(
            dfError(
              'DF_ERR_ASSOCIATION_REJECTED',
              `${r.calledAeTitle} rejected the association (${describeRejection(decodeAssociateRj(pdu.body))})`,
            ),
          );
        } else if (pdu.type === PduType.Abort) {
          return fail(
            dfError('DF_ERR_ASSOCIATION_ABORTED', `${r.calledAeTitle} aborted the association (${describeAbort(decodeAbort(pdu.body))})`),
          );
        } else if (pdu.type === PduType.ReleaseRp) {
          phase = 'releasing';
          settled = true;
          clearTimeout(timer);
          socket.end();
          resolve({ status: finalStatus ?? 0xc000, ...counts });
        } else if (pdu.type === PduType.PData) {
          for (const pdv of decodePData(pdu.body)) {
            const isCommand = (pdv.control & PdvControl.Command) !== 0;
            const isLast = (pdv.control & PdvControl.Last) !== 0;
            if (!isCommand) {
              if (!reception)
                return fail(dfError('DF_ERR_PDU_INVALID', `${r.calledAeTitle} sent a dataset with no C-STORE request before it`));
              reception.write(Buffer.from(pdv.value));
              // Sub-operations are answered in order; a slow finish must not reorder responses.
              if (isLast) queue = queue.then(finishStore).catch((err) => fail(err as Error));
              continue;
            }
            commandParts.push(Buffer.from(pdv.value));
            if (!isLast) continue;
            const command = decodeCommand(Buffer.concat(commandParts));
            commandParts = [];
            if (command.CommandField === CommandField.CStoreRq) onStoreCommand(command, pdv.contextId);
            else if (command.CommandField === CommandField.CGetRsp) {
              const status = Number(command.Status);
              if (status === 0xff00 || status === 0xff01) {
                r.onProgress?.({ ...counts, remaining: Number(command.NumberOfRemainingSuboperations ?? 0) });
                continue;
              }
              finalStatus = status;
              queue = queue.then(() => {
                socket.write(encodeReleaseRq());
              });
            }
          }
        }
      }
    });
  });
}

/**
 * C-FIND SCU at STUDY level (Study Root): the Study Instance UIDs a remote node holds, all of them
 * or a patient's. Used to replicate a patient or a whole node study by study.
 */
export async function findStudyUids(r: PeerAddress & { patientId?: string; timeoutMs?: number }): Promise<string[]> {
  const contexts: ProposedContext[] = [
    {
      id: 1,
      abstractSyntax: queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelFind,
      transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
    },
  ];
  const timeoutMs = r.timeoutMs ?? 30_000;
  const socket = await openSocket(r);
  return new Promise((resolve, reject) => {
    const reader = new PduReader(0);
    const uids: string[] = [];
    let transferSyntax = EXPLICIT_VR_LE;
    let commandParts: Buffer[] = [];
    let datasetParts: Buffer[] = [];
    let done = false;
    const timer = setTimeout(
      () => fail(dfError('DF_ERR_PEER_TIMEOUT', `${r.calledAeTitle} did not answer the C-FIND within ${timeoutMs} ms`)),
      timeoutMs,
    );
    function fail(err: Error) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
    socket.write(encodeAssociateRq({ callingAeTitle: r.callingAeTitle, calledAeTitle: r.calledAeTitle, contexts, maxPduLength: 0 }));
    socket.on('error', (err) =>
      fail(dfError('DF_ERR_ASSOCIATION_ABORTED', `the connection to ${peerLabel(r)} failed: ${err.message}`, { cause: err })),
    );
    socket.on('close', () => fail(dfError('DF_ERR_ASSOCIATION_ABORTED', `${r.calledAeTitle} closed the connection during the C-FIND`)));
    socket.on('data', (chunk: Buffer) => {
      let pdus;
      try {
        pdus = reader.push(chunk);
      } catch (err) {
        return fail(err as Error);
      }
      for (const pdu of pdus) {
        if (pdu.type === PduType.AssociateAc) {
          const ac = decodeAssociateAc(pdu.body, contexts);
          const find = ac.contexts.find((c) => c.id === 1 && c.result === 0);
          if (!find?.transferSyntax)
            return fail(dfError('DF_ERR_CONTEXT_REJECTED', `${r.calledAeTitle} does not accept Study Root C-FIND`));
          transferSyntax = find.transferSyntax;
          const command = encodeCommand({
            AffectedSOPClassUID: queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelFind,
            CommandField: CommandField.CFindRq,
            MessageID: 1,
            Priority: 0,
            CommandDataSetType: 0x0000,
          });
          socket.write(encodePData(1, PdvControl.Command | PdvControl.Last, command));
          const identifier = {
            QueryRetrieveLevel: 'STUDY',
            StudyInstanceUID: '',
            ...(r.patientId !== undefined ? { PatientID: r.patientId } : {}),
          };
          socket.write(encodePData(1, PdvControl.Last, encodeIdentifier(identifier, transferSyntax === IMPLICIT_VR_LE)));
        } else if (pdu.type === PduType.AssociateRj) {
          return fail(
            dfError(
              'DF_ERR_ASSOCIATION_REJECTED',
              `${r.calledAeTitle} rejected the association (${describeRejection(decodeAssociateRj(pdu.body))})`,
            ),
          );
        } else if (pdu.type === PduType.Abort) {
          return fail(
            dfError('DF_ERR_ASSOCIATION_ABORTED', `${r.calledAeTitle} aborted the association (${describeAbort(decodeAbort(pdu.body))})`),
          );
        } else if (pdu.type === PduType.ReleaseRp) {
          done = true;
          clearTimeout(timer);
          socket.end();
          resolve(uids);
        } else if (pdu.type === PduType.PData) {
          for (const pdv of decodePData(pdu.body)) {
            const isLast = (pdv.control & PdvControl.Last) !== 0;
            if ((pdv.control & PdvControl.Command) === 0) {
              datasetParts.push(Buffer.from(pdv.value));
              if (isLast) {
                const walker = new DatasetWalker({ explicitVr: transferSyntax !== IMPLICIT_VR_LE, littleEndian: true });
                walker.push(Buffer.concat(datasetParts));
                datasetParts = [];
                const uid = walker
                  .end()
                  .get(0x0020000d)
                  ?.value.toString('latin1')
                  .replace(/[\0 ]+$/, '');
                if (uid) uids.push(uid);
              }
              continue;
            }
            commandParts.push(Buffer.from(pdv.value));
            if (!isLast) continue;
            const command = decodeCommand(Buffer.concat(commandParts));
            commandParts = [];
            if (command.CommandField !== CommandField.CFindRsp) continue;
            const status = Number(command.Status);
            if (status === 0xff00 || status === 0xff01) continue;
            if (status !== 0x0000)
              return fail(dfError('DF_ERR_PEER_TIMEOUT', `${r.calledAeTitle} answered the C-FIND with status 0x${status.toString(16)}`));
            socket.write(encodeReleaseRq());
          }
        }
      }
    });
  });
}
