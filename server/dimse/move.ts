import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import type { HierarchyFilter, QuerySource } from '../../core/store/index-store.ts';
import type { ObjectStore } from '../../core/store/object-store.ts';
import { RetrieveStatus } from './retrieve-status.ts';
import { sendFiles, tlsOptionsForNode, type NodeTls } from './store-scu.ts';

const { responses, Dataset } = dimse;
const { CMoveResponse } = responses;
type CMoveRequest = InstanceType<typeof dimse.requests.CMoveRequest>;
type CMoveResponseT = InstanceType<typeof CMoveResponse>;

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

export interface RemoteNode extends NodeTls {
  aeTitle: string;
  host: string;
  port: number;
}

const KEY_OF_LEVEL: Record<string, keyof HierarchyFilter> = {
  PATIENT: 'patientId',
  STUDY: 'studyInstanceUids',
  SERIES: 'seriesInstanceUids',
  IMAGE: 'sopInstanceUids',
};

/**
 * The retrieve side of Query/Retrieve: which stored objects an identifier names (unique keys
 * only, PS3.4 C.4.2.2.1: no matching on other keys) — shared by C-MOVE and C-GET.
 */
export async function selectObjects(
  source: QuerySource,
  objects: ObjectStore,
  model: 'PATIENT' | 'STUDY',
  identifier: Record<string, unknown>,
): Promise<{ files: string[] } | { error: string }> {
  const level = String(identifier.QueryRetrieveLevel ?? '').trim();
  if (!(level in KEY_OF_LEVEL) || (model === 'STUDY' && level === 'PATIENT'))
    return { error: `QueryRetrieveLevel "${level}" is not valid here` };
  const uids = (keyword: string) =>
    String(identifier[keyword] ?? '')
      .split('\\')
      .map((u) => u.trim())
      .filter((u) => u !== '');
  const filter: HierarchyFilter = {};
  const patientId = uids('PatientID')[0];
  if (patientId !== undefined) filter.patientId = patientId;
  const study = uids('StudyInstanceUID');
  const series = uids('SeriesInstanceUID');
  const sop = uids('SOPInstanceUID');
  if (study.length > 0) filter.studyInstanceUids = study;
  if (series.length > 0) filter.seriesInstanceUids = series;
  if (sop.length > 0) filter.sopInstanceUids = sop;
  if (filter[KEY_OF_LEVEL[level]] === undefined) return { error: `a ${level}-level retrieve needs its unique key` };
  return { files: (await source.instances(filter)).map((r) => r.filePath ?? objects.absolutePath(r.objectPath)) };
}

/**
 * C-MOVE SCP: the selected objects go to a destination named in the configuration, as their
 * original bytes (sub-operations through our own C-STORE SCU), with a pending response after
 * each and the counts PS3.4 asks for.
 */
export class MoveService {
  private readonly objects: ObjectStore;
  private readonly nodes: Map<string, RemoteNode>;
  private readonly aeTitle: string;

  constructor(objects: ObjectStore, nodes: RemoteNode[], aeTitle: string) {
    this.objects = objects;
    this.nodes = new Map(nodes.map((n) => [n.aeTitle, n]));
    this.aeTitle = aeTitle;
  }

  async answer(
    request: CMoveRequest,
    c: { source: QuerySource; destination: string | undefined; callingAeTitle: string; identifier: Record<string, unknown>; log: Logger },
    send: { pending(response: CMoveResponseT): void; final(response: CMoveResponseT): void },
  ): Promise<void> {
    const final = (
      status: number,
      counts: { completed: number; failed: number; warnings: number },
      comment?: string,
      failedUids?: string[],
    ) => {
      const r = CMoveResponse.fromRequest(request);
      r.setStatus(status);
      r.setRemaining(0);
      r.setCompleted(counts.completed);
      r.setFailures(counts.failed);
      r.setWarnings(counts.warnings);
      if (comment) r.setErrorComment(comment.slice(0, 64));
      // PS3.4 C.4.2.1.4.2: a response with failures lists them in Failed SOP Instance UID List.
      if (failedUids && failedUids.length > 0) r.setDataset(new Dataset({ FailedSOPInstanceUIDList: failedUids }, EXPLICIT_VR_LE));
      send.final(r);
    };
    const zero = { completed: 0, failed: 0, warnings: 0 };
    const node = c.destination ? this.nodes.get(c.destination) : undefined;
    if (!node) {
      c.log.warn({ code: 'DF_ERR_DESTINATION_UNKNOWN', destination: c.destination }, 'C-MOVE refused: destination unknown');
      return final(RetrieveStatus.MoveDestinationUnknown, zero, `unknown move destination "${c.destination ?? ''}"`);
    }
    const model =
      request.getAffectedSopClassUid() === queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelMove ? 'PATIENT' : 'STUDY';
    let selected;
    try {
      selected = await selectObjects(c.source, this.objects, model, c.identifier);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      c.log.warn(
        { code: typeof code === 'string' && code.startsWith('DF_ERR_') ? code : 'DF_ERR_QUERY_INVALID', err: (err as Error).message },
        'C-MOVE refused: cannot select the objects',
      );
      return final(RetrieveStatus.UnableToProcess, zero, (err as Error).message);
    }
    if ('error' in selected) {
      c.log.warn({ code: 'DF_ERR_QUERY_INVALID', reason: selected.error }, 'C-MOVE refused: identifier does not match');
      return final(RetrieveStatus.IdentifierDoesNotMatch, zero, selected.error);
    }
    const total = selected.files.length;
    const counts = { completed: 0, failed: 0, warnings: 0 };
    const failedUids: string[] = [];
    const results = await sendFiles({
      host: node.host,
      port: node.port,
      callingAeTitle: this.aeTitle,
      calledAeTitle: node.aeTitle,
      tls: tlsOptionsForNode(node),
      files: selected.files,
      moveOriginator: { aeTitle: c.callingAeTitle, messageId: request.getMessageId() },
      onProgress: ({ done, result }) => {
        if (result.outcome === 'success') counts.completed++;
        else if (result.outcome === 'warning') counts.warnings++;
        else {
          counts.failed++;
          if (result.sopInstanceUid) failedUids.push(result.sopInstanceUid);
        }
        if (done < total) {
          const pending = CMoveResponse.fromRequest(request);
          pending.setStatus(RetrieveStatus.Pending);
          pending.setRemaining(total - done);
          pending.setCompleted(counts.completed);
          pending.setFailures(counts.failed);
          pending.setWarnings(counts.warnings);
          send.pending(pending);
        }
      },
    });
    const firstError = results.find((r) => r.error)?.error?.message;
    c.log.info({ destination: node.aeTitle, ...counts, total }, 'C-MOVE done');
    if (counts.failed === 0 && counts.warnings === 0) return final(RetrieveStatus.Success, counts);
    if (counts.completed + counts.warnings === 0) return final(RetrieveStatus.UnableToPerformSubOperations, counts, firstError, failedUids);
    return final(RetrieveStatus.SubOperationsWithFailures, counts, firstError, failedUids);
  }
}
