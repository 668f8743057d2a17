/**
 * STOW-RS (PS3.18 10.5): each application/dicom part of the body goes through the same
 * reception as a C-STORE (core/receive/receive.ts), written to the spool as it streams in and answered
 * only once its file is fsync'ed and its arrival committed. A part that cannot be stored leaves
 * nothing behind and is listed in FailedSOPSequence with its reason.
 */
import type { FastifyBaseLogger } from 'fastify';
import { readFileMeta } from '../../../core/dicom/part10.ts';
import { dfError, type DfError, type ErrorCode } from '../../../core/errors.ts';
import type { Provenance, Reception, Receiver } from '../../../core/receive/receive.ts';
import { attributeFromString, type DicomJsonDataset } from './dicom-json.ts';
import { mediaTypeParameters, MultipartReader } from './multipart.ts';

export interface StowRequest {
  receiver: Receiver;
  contentType: string | undefined;
  body: AsyncIterable<Buffer>;
  /** From the path /studies/{study}: every instance must belong to it. */
  studyInstanceUid?: string;
  provenance: Provenance;
  serviceUrl: string;
  log: FastifyBaseLogger;
}

interface Outcome {
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  /** PS3.18 Table 10.5.3-2 / PS3.4 Annex B status codes. */
  failureReason?: number;
  message?: string;
}

/** Parts whose fsync and index commit may be in flight while the next ones arrive. */
const FINISHING_AT_ONCE = 4;

// A file meta group larger than this is not one (the usual is a few hundred bytes).
const MAX_META_BYTES = 64 * 1024;

const failureReasonOf: Partial<Record<ErrorCode, number>> = {
  DF_ERR_STORE_FULL: 0xa700, // Refused: Out of Resources
  DF_ERR_DATASET_MISMATCH: 0xa900, // Error: Data Set does not match SOP Class
  DF_ERR_DATASET_MALFORMED: 0xc000, // Error: Cannot understand
  DF_ERR_DATASET_INCOMPLETE: 0xc000,
  DF_ERR_UID_INVALID: 0xc000,
  DF_ERR_DUPLICATE_REJECTED: 0x0111, // Duplicate SOP Instance
};

/** One part of the body, from its headers to its stored (or refused) object. */
class StowPart {
  private head: Buffer[] = [];
  private headBytes = 0;
  private reception: Reception | undefined;
  private failure: { code: ErrorCode; message: string } | undefined;
  private meta: ReturnType<typeof readFileMeta> | undefined;

  private readonly receiver: Receiver;

  constructor(receiver: Receiver, headers: Record<string, string>) {
    this.receiver = receiver;
    const type = mediaTypeParameters(headers['content-type'] ?? '').mediaType;
    if (type !== 'application/dicom')
      this.failure = { code: 'DF_ERR_DATASET_MALFORMED', message: `a part of type "${type || 'none'}" is not application/dicom` };
  }

  write(bytes: Buffer): void {
    if (this.failure) return;
    if (this.reception) return this.reception.write(bytes);
    this.head.push(bytes);
    this.headBytes += bytes.length;
    this.tryBegin(false);
  }

  /** Starts the reception once the file meta group is complete (PS3.10 7.1). */
  private tryBegin(atEnd: boolean): void {
    const head = Buffer.concat(this.head, this.headBytes);
    this.head = [head];
    if (!atEnd && head.length < 144) return;
    const declared =
      head.length >= 144 && head.readUInt16LE(132) === 0x0002 && head.readUInt16LE(134) === 0x0000
        ? 144 + head.readUInt32LE(140)
        : MAX_META_BYTES;
    if (!atEnd && head.length < Math.min(declared, MAX_META_BYTES)) return;
    try {
      this.meta = readFileMeta(head.subarray(0, Math.min(head.length, MAX_META_BYTES)));
    } catch (err) {
      this.failure = { code: 'DF_ERR_DATASET_MALFORMED', message: `not a DICOM Part 10 object: ${(err as Error).message}` };
      this.head = [];
      return;
    }
    this.reception = this.receiver.begin({
      sopClassUid: this.meta.sopClassUid,
      sopInstanceUid: this.meta.sopInstanceUid,
      transferSyntaxUid: this.meta.transferSyntaxUid,
    });
    this.head = [];
    this.reception.write(head.subarray(this.meta.datasetOffset));
  }

  async finish(provenance: Provenance, studyInstanceUid: string | undefined): Promise<Outcome> {
    if (!this.failure && !this.reception) this.tryBegin(true);
    const ids = { sopClassUid: this.meta?.sopClassUid, sopInstanceUid: this.meta?.sopInstanceUid };
    if (this.failure || !this.reception) {
      const failure = this.failure ?? { code: 'DF_ERR_DATASET_MALFORMED' as const, message: 'empty part' };
      return { ...ids, failureReason: failureReasonOf[failure.code] ?? 0x0110, message: failure.message };
    }
    const result = await this.reception.finish(provenance, (attributes) =>
      studyInstanceUid !== undefined && attributes.StudyInstanceUID !== studyInstanceUid
        ? dfError(
            'DF_ERR_DATASET_MISMATCH',
            `the object belongs to study ${attributes.StudyInstanceUID}, not ${studyInstanceUid} named in the request`,
          )
        : undefined,
    );
    if (!result.ok) return { ...ids, failureReason: failureReasonOf[result.error.code] ?? 0x0110, message: result.error.message };
    return { ...ids, studyInstanceUid: result.attributes.StudyInstanceUID, seriesInstanceUid: result.attributes.SeriesInstanceUID };
  }

  async abort(): Promise<void> {
    await this.reception?.abort();
  }
}

/** Reads the body part by part; resolves with the status and the Store Instances Response. */
export async function storeInstances(request: StowRequest): Promise<{ status: 200 | 202 | 409; response: DicomJsonDataset }> {
  const { mediaType, parameters } = mediaTypeParameters(request.contentType ?? '');
  const type = (parameters.type ?? 'application/dicom').toLowerCase();
  if (mediaType !== 'multipart/related' || type !== 'application/dicom' || !parameters.boundary) {
    throw dfError(
      'DF_ERR_MEDIA_TYPE_UNSUPPORTED',
      `the body must be multipart/related; type="application/dicom"; boundary=…, not ${request.contentType ?? 'none'}`,
    );
  }
  const reader = new MultipartReader(parameters.boundary);
  // A part's finish (fsync and index commit) overlaps the next parts' arrival, a few at a time:
  // the wait for the disk is hidden, and the body still pauses when they pile up.
  const finishing: Promise<Outcome>[] = [];
  const outcomes: Outcome[] = [];
  const settleOldest = async () => {
    outcomes.push(await finishing.shift()!);
  };
  let part: StowPart | undefined;
  let cutShort: unknown;
  try {
    for await (const chunk of request.body) {
      for (const event of reader.push(chunk)) {
        if (event.kind === 'part') part = new StowPart(request.receiver, event.headers);
        else if (event.kind === 'data') part?.write(event.bytes);
        else if (part) {
          finishing.push(
            part
              .finish(request.provenance, request.studyInstanceUid)
              .catch((err: unknown) => ({ failureReason: 0x0110, message: (err as Error).message })),
          );
          part = undefined;
          if (finishing.length >= FINISHING_AT_ONCE) await settleOldest();
        }
      }
      if (reader.finished) break;
    }
    reader.end();
  } catch (err) {
    // A body cut short: the part in progress was never complete, so nothing of it is kept.
    await part?.abort();
    cutShort = err;
  }
  while (finishing.length > 0) await settleOldest();
  if (cutShort !== undefined) {
    if (outcomes.length === 0) throw cutShort;
    outcomes.push({ failureReason: 0xc000, message: (cutShort as DfError).message });
  }
  if (outcomes.length === 0) throw dfError('DF_ERR_REQUEST_INVALID', 'the multipart body holds no part');

  const stored = outcomes.filter((o) => o.failureReason === undefined);
  const failed = outcomes.filter((o) => o.failureReason !== undefined);
  for (const f of failed)
    request.log.warn({ sopInstanceUid: f.sopInstanceUid, failureReason: f.failureReason, err: f.message }, 'STOW-RS part refused');
  const studies = new Set(stored.map((o) => o.studyInstanceUid));
  const study = request.studyInstanceUid ?? (studies.size === 1 ? [...studies][0] : undefined);
  const str = (vr: string, value: string | undefined) => attributeFromString(vr, value ?? '');
  const response: DicomJsonDataset = {};
  if (study) response['00081190'] = str('UR', `${request.serviceUrl}/studies/${study}`);
  if (failed.length > 0) {
    response['00081198'] = {
      vr: 'SQ',
      Value: failed.map((f) => ({
        '00081150': str('UI', f.sopClassUid),
        '00081155': str('UI', f.sopInstanceUid),
        '00081197': { vr: 'US', Value: [f.failureReason] },
      })),
    };
  }
  if (stored.length > 0) {
    response['00081199'] = {
      vr: 'SQ',
      Value: stored.map((s) => ({
        '00081150': str('UI', s.sopClassUid),
        '00081155': str('UI', s.sopInstanceUid),
        '00081190': str(
          'UR',
          `${request.serviceUrl}/studies/${s.studyInstanceUid}/series/${s.seriesInstanceUid}/instances/${s.sopInstanceUid}`,
        ),
      })),
    };
  }
  // PS3.18 10.5.3: 200 all stored, 202 some failed, 409 none stored.
  return { status: failed.length === 0 ? 200 : stored.length === 0 ? 409 : 202, response };
}
