import dimse from 'dcmjs-dimse';
import dcmjs from 'dcmjs';
import type { Logger } from 'pino';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import { dfError, isDfError } from '../../core/errors.ts';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { parseIdentifier, type ParsedQuery } from '../../core/query/identifier.ts';
import { buildResponse, matchesRow } from '../../core/query/match.ts';
import { indexFilterOf } from '../../core/query/match-keys.ts';
import type { PageRequest, QuerySource } from '../../core/store/index-store.ts';

const { Dataset, constants, responses } = dimse;
const { CFindResponse } = responses;
const { Status } = constants;
type CFindRequest = InstanceType<typeof dimse.requests.CFindRequest>;
type CFindResponseT = InstanceType<typeof CFindResponse>;

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
// PS3.4 C.4.1.1.4: A900 "Identifier does not match SOP Class", C000 "Unable to process".
const IDENTIFIER_DOES_NOT_MATCH = 0xa900;
const UNABLE_TO_PROCESS = 0xc000;

const dictionary = dcmjs.data.DicomMetaDictionary;
const vrOf = (keyword: string): string | undefined => dictionary.nameMap[keyword]?.vr;

/** Rows read from the index at a time: the answer is sent page by page, never held whole. */
const PAGE_ROWS = 200;
/** The longest the answer holds the event loop between two turns of it. */
const LOOP_SLICE_MS = 2;

/** Where the responses of one C-FIND go, and whether the peer asked to stop (C-CANCEL). */
export interface FindChannel {
  /** Sends one response; resolves once the connection can take more. */
  send(response: CFindResponseT): Promise<void>;
  cancelled(): boolean;
  /** The transfer syntax accepted for the request's presentation context: responses are encoded in it. */
  transferSyntaxUid?: string;
}

/**
 * C-FIND SCP: the index prefilters by unique keys and match keys (in SQL, over indexed columns),
 * the pure matcher of core/query decides, and
 * each match becomes one pending response holding exactly the requested keys. The matches are
 * read a page at a time and each response is sent as it is made, waiting while the peer reads;
 * between pages the connection's input is read, so a C-CANCEL ends the answer at once (FE00).
 */
export class FindService {
  async answer(
    request: CFindRequest,
    source: QuerySource,
    log: Logger,
    raw: { dataset: Buffer; transferSyntaxUid: string } | undefined,
    channel: FindChannel,
  ): Promise<void> {
    const model =
      request.getAffectedSopClassUid() === queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelFind ? 'PATIENT' : 'STUDY';
    let parsed: ParsedQuery;
    try {
      const identifier = {
        ...(request.getDataset()?.getElements() ?? {}),
        ...(raw ? rawIdentifierValues(raw.dataset, raw.transferSyntaxUid) : {}),
      };
      parsed = parseIdentifier(identifier, model, { vrOf });
    } catch (err) {
      log.warn({ code: isDfError(err) ? err.code : undefined, err: (err as Error).message }, 'C-FIND refused');
      // (0000,0902) holds 64 characters: lead with the problem itself, not the code and model.
      const problems = (isDfError(err) ? (err.details?.problems as { message: string }[] | undefined) : undefined) ?? [];
      const comment = problems.length > 0 ? `DF_ERR_QUERY_INVALID: ${problems.map((p) => p.message).join('; ')}` : (err as Error).message;
      return channel.send(final(request, IDENTIFIER_DOES_NOT_MATCH, comment));
    }
    let matches = 0;
    try {
      const transferSyntaxUid = channel.transferSyntaxUid ?? EXPLICIT_VR_LE;
      for await (const elements of this.matches(parsed, source, channel)) {
        // A value outside ASCII is declared in the response that holds it (PS3.4 C.4.1.1.3.1).
        const charset = Object.values(elements).some((v) => typeof v === 'string' && /[^\x00-\x7f]/.test(v)) ? 'ISO_IR 192' : undefined;
        const identifier = charset ? { SpecificCharacterSet: charset, ...elements } : elements;
        const response = CFindResponse.fromRequest(request);
        response.setStatus(Status.Pending);
        // Encoded here, before anything is sent: the library writes the command first and encodes
        // the data set after, so a failure there would leave the peer half a message and an abort.
        response.setDataset(new EncodedIdentifier(identifier, transferSyntaxUid, encodeMatch(identifier, transferSyntaxUid, matches)));
        await channel.send(response);
        matches++;
      }
    } catch (err) {
      const code = isDfError(err) ? err.code : 'DF_ERR_QUERY_RESPONSE_FAILED';
      log.error({ code, err, matches, queryLevel: parsed.level, model }, 'C-FIND failed');
      return channel.send(final(request, UNABLE_TO_PROCESS, isDfError(err) ? err.message : `${code}: ${(err as Error).message}`));
    }
    if (channel.cancelled()) {
      log.info({ queryLevel: parsed.level, model, matches }, 'C-FIND cancelled');
      // PS3.4 C.4.1.2.3: the final response to a cancelled query says Cancel.
      return channel.send(final(request, Status.Cancel));
    }
    log.info({ queryLevel: parsed.level, model, matches }, 'C-FIND answered');
    return channel.send(final(request, Status.Success));
  }

  /** The identifiers to answer with, one match at a time; ends early once cancelled. */
  private async *matches(parsed: ParsedQuery, source: QuerySource, channel: FindChannel): AsyncGenerator<Record<string, unknown>> {
    const filter = indexFilterOf(parsed);
    switch (parsed.level) {
      case 'PATIENT':
        for await (const p of pages((page) => source.patients(filter, page), channel)) {
          const rows = { patient: p.attributes };
          if (matchesRow(parsed, rows)) {
            yield buildResponse(parsed, rows, {
              NumberOfPatientRelatedStudies: String(p.numberOfStudies),
              NumberOfPatientRelatedSeries: String(p.numberOfSeries),
              NumberOfPatientRelatedInstances: String(p.numberOfInstances),
            });
          }
        }
        break;
      case 'STUDY':
        for await (const s of pages((page) => source.studies(filter, page), channel)) {
          const rows = {
            patient: s.patient,
            study: { ...s.study, ModalitiesInStudy: s.modalitiesInStudy.join('\\'), SOPClassesInStudy: s.sopClassesInStudy.join('\\') },
          };
          if (matchesRow(parsed, rows)) {
            yield buildResponse(parsed, rows, {
              NumberOfStudyRelatedSeries: String(s.numberOfSeries),
              NumberOfStudyRelatedInstances: String(s.numberOfInstances),
            });
          }
        }
        break;
      case 'SERIES':
        for await (const s of pages((page) => source.series(filter, page), channel)) {
          const rows = { patient: s.patient, study: s.study, series: s.series };
          if (matchesRow(parsed, rows)) yield buildResponse(parsed, rows, { NumberOfSeriesRelatedInstances: String(s.numberOfInstances) });
        }
        break;
      case 'IMAGE':
        for await (const i of pages((page) => source.instances(filter, page), channel)) {
          const rows = { patient: i.patient, study: i.study, series: i.series, instance: i.instance };
          if (matchesRow(parsed, rows)) yield buildResponse(parsed, rows, {});
        }
        break;
    }
  }
}

/**
 * A level's rows page after page until a short page, one without keys (a source that does not
 * page answers whole), or a cancel. Each page is read off the event loop (a reader thread or a
 * pooled connection); between pages the loop reads the connection's input, so a C-CANCEL or a
 * C-ECHO is answered while a long query runs.
 */
async function* pages<R extends { key?: string }>(read: (page: PageRequest) => Promise<R[]>, channel: FindChannel): AsyncGenerator<R> {
  for (let after: string | undefined; ; ) {
    const rows = await read({ after, limit: PAGE_ROWS });
    let sliceStart = performance.now();
    for (const row of rows) {
      if (channel.cancelled()) return;
      yield row;
      // Matching and encoding a page's responses is work on the loop, and a send to a peer that
      // reads fast resolves at once: every few milliseconds the loop takes its other work
      // (a C-ECHO, a health probe) before the next response.
      if (performance.now() - sliceStart >= LOOP_SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    after = rows.at(-1)?.key;
    if (rows.length < PAGE_ROWS || after === undefined || channel.cancelled()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

// dcmjs's tag-keyed dictionary does not enumerate; its keyword-keyed nameMap does.
const keywordsByTag = new Map<number, { keyword: string; vr: string }>(
  Object.values(dictionary.nameMap as Record<string, { name: string; vr: string; tag: string }>)
    .filter((entry) => /^\([0-9A-F]{4},[0-9A-F]{4}\)$/.test(entry.tag))
    .map((entry) => [parseInt(entry.tag.slice(1, 5) + entry.tag.slice(6, 10), 16), { keyword: entry.name, vr: entry.vr }]),
);
const BINARY_NUMBER_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV']);

/**
 * The identifier's values that dcmjs reads differently from what was sent. It drops every
 * character of a UID but digits and dots, which would turn a query for a non-conforming stored
 * UID (or a malformed one that should be refused) into a different query; and it reads a
 * zero-length binary number (an empty Rows, asking for it to be returned) as 0, a match on 0.
 */
export function rawIdentifierValues(dataset: Buffer, transferSyntaxUid: string): Record<string, string> {
  const walker = new DatasetWalker({ explicitVr: transferSyntaxUid !== IMPLICIT_VR_LE, littleEndian: true, captureMaxBytes: 64 * 1024 });
  try {
    walker.push(dataset);
    walker.end();
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const [tag, element] of walker.elements) {
    const known = keywordsByTag.get(tag);
    if (!known || (element.vr !== '' && element.vr !== known.vr)) continue;
    if (known.vr === 'UI') out[known.keyword] = element.value.toString('latin1').replace(/[\0 ]+$/, '');
    else if (BINARY_NUMBER_VRS.has(known.vr) && element.value.length === 0) out[known.keyword] = '';
  }
  return out;
}

/**
 * A response identifier holding stored values as they are. An object is stored as received, so a
 * value can be longer than its VR allows (a 1000-character name); a C-FIND response may carry the
 * stored value (PS3.4 C.4.1.1.3.2; DCMTK's dcmqrscp does), and findscu and dcmdump read it. dcmjs
 * would refuse such a PN, DA, DT or TM on write and silently cut a CS, IS, DS, AS or AE while
 * denaturalizing, so the elements are denaturalized here and written without its length checks.
 */
export function encodeIdentifier(elements: Record<string, unknown>, transferSyntaxUid: string): Buffer {
  const stream = new dcmjs.data.WriteBufferStream(1024);
  dcmjs.data.DicomMessage.write(denaturalize(elements), stream, transferSyntaxUid, { allowInvalidVRLength: true });
  return Buffer.from(stream.getBuffer());
}

/** VRs whose one value may hold a backslash (PS3.5 6.2): every other string VR splits on it. */
const SINGLE_VALUED_VRS = new Set(['LT', 'ST', 'UT', 'UR']);

function denaturalize(elements: Record<string, unknown>): Record<string, { vr: string; Value: unknown[] }> {
  const out: Record<string, { vr: string; Value: unknown[] }> = {};
  for (const [keyword, value] of Object.entries(elements)) {
    const entry = dictionary.nameMap[keyword] as { tag: string; vr: string } | undefined;
    if (entry === undefined || !/^[A-Z]{2}$/.test(entry.vr) || value === undefined || value === null) {
      // Keywords of ambiguous VR (US or SS) and private ones: the library's own rules, as before.
      Object.assign(out, dictionary.denaturalizeDataset({ [keyword]: value }));
      continue;
    }
    const tag = entry.tag.replace(/[(),]/g, '');
    if (entry.vr === 'SQ') out[tag] = { vr: 'SQ', Value: (value as Record<string, unknown>[]).map(denaturalize) };
    else if (typeof value === 'string' && !SINGLE_VALUED_VRS.has(entry.vr))
      out[tag] = { vr: entry.vr, Value: value === '' ? [] : value.split('\\') };
    else out[tag] = { vr: entry.vr, Value: Array.isArray(value) ? value : [value] };
  }
  return out;
}

/** One match's identifier, or why it cannot be sent (the C-FIND then ends with C000). */
function encodeMatch(identifier: Record<string, unknown>, transferSyntaxUid: string, index: number): Buffer {
  try {
    return encodeIdentifier(identifier, transferSyntaxUid);
  } catch (err) {
    // The error comment holds 64 characters: the reason goes there, which match goes to the log.
    const keys = ['PatientID', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID'].filter(
      (k) => typeof identifier[k] === 'string' && identifier[k] !== '',
    );
    throw dfError('DF_ERR_QUERY_RESPONSE_FAILED', `match ${index + 1} cannot be encoded: ${(err as Error).message}`, {
      cause: err,
      details: Object.fromEntries(keys.map((k) => [k, identifier[k]])),
    });
  }
}

/** A data set whose bytes were encoded before sending; the library writes them as they are. */
class EncodedIdentifier extends Dataset {
  readonly #bytes: Buffer;
  constructor(elements: Record<string, unknown>, transferSyntaxUid: string, bytes: Buffer) {
    super(elements, transferSyntaxUid);
    this.#bytes = bytes;
  }
  override getDenaturalizedDataset(): Buffer {
    return this.#bytes;
  }
}

function final(request: CFindRequest, status: number, comment?: string): CFindResponseT {
  const response = CFindResponse.fromRequest(request);
  response.setStatus(status);
  if (comment) response.setErrorComment(comment.slice(0, 64));
  return response;
}
