import dcmjs from 'dcmjs';
import type { Logger } from 'pino';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import { IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { dfError, isDfError } from '../../core/errors.ts';
import { type ParsedQuery, parseIdentifier } from '../../core/query/identifier.ts';
import { indexFilterOf } from '../../core/query/match-keys.ts';
import { buildResponse, matchesRow } from '../../core/query/match.ts';
import type { PageRequest, QuerySource } from '../../core/store/index-store.ts';
import { encodeIdentifier } from './identifier-encoder.ts';

/** A C-FIND request: its Affected SOP Class UID and its identifier as dcmjs reads it. */
export interface FindRequest {
  sopClassUid: string | undefined;
  elements: Record<string, unknown>;
}

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_VR_BE = '1.2.840.10008.1.2.2';
// PS3.4 C.4.1.1.4: A900 "Identifier does not match SOP Class", C000 "Unable to process"; PS3.7 C.1-C.4.
const IDENTIFIER_DOES_NOT_MATCH = 0xa900;
const UNABLE_TO_PROCESS = 0xc000;
const SUCCESS = 0x0000;
const CANCEL = 0xfe00;

const dictionary = dcmjs.data.DicomMetaDictionary;
const vrOf = (keyword: string): string | undefined => dictionary.nameMap[keyword]?.vr;

/** Rows read from the index at a time: the answer is sent page by page, never held whole. */
const PAGE_ROWS = 200;
/** The longest the answer holds the event loop between two turns of it. */
const LOOP_SLICE_MS = 2;

/** Where the responses of one C-FIND go, and whether the peer asked to stop (C-CANCEL). */
export interface FindChannel {
  /** Sends one pending response holding this identifier; resolves once the connection can take more. */
  pending(identifier: Buffer): Promise<void>;
  /** Sends the final response, which ends the request (its comment is cut to 64 characters). */
  final(status: number, comment?: string): void;
  cancelled(): boolean;
  /** The transfer syntax accepted for the request's presentation context: responses are encoded in it. */
  transferSyntaxUid?: string;
}

/**
 * C-FIND SCP: the index prefilters by unique keys and match keys (in SQL, over indexed columns),
 * the pure matcher of core/query decides, and
 * each match becomes one pending response holding exactly the requested keys. The matches are
 * read a page at a time and each response is sent as it is made (the SCP gathers one turn's
 * responses into one write), waiting while the peer reads;
 * between pages the connection's input is read, so a C-CANCEL ends the answer at once (FE00).
 */
export class FindService {
  async answer(
    request: FindRequest,
    source: QuerySource,
    log: Logger,
    raw: { dataset: Buffer; transferSyntaxUid: string } | undefined,
    channel: FindChannel,
  ): Promise<void> {
    const model = request.sopClassUid === queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelFind ? 'PATIENT' : 'STUDY';
    let parsed: ParsedQuery;
    try {
      const identifier = {
        ...request.elements,
        ...(raw ? rawIdentifierValues(raw.dataset, raw.transferSyntaxUid) : {}),
      };
      parsed = parseIdentifier(identifier, model, { vrOf });
    } catch (err) {
      log.warn({ code: isDfError(err) ? err.code : undefined, err: (err as Error).message }, 'C-FIND refused');
      // (0000,0902) holds 64 characters: lead with the problem itself, not the code and model.
      const problems = (isDfError(err) ? (err.details?.problems as { message: string }[] | undefined) : undefined) ?? [];
      const comment = problems.length > 0 ? `DF_ERR_QUERY_INVALID: ${problems.map((p) => p.message).join('; ')}` : (err as Error).message;
      return channel.final(IDENTIFIER_DOES_NOT_MATCH, comment);
    }
    let matches = 0;
    try {
      const transferSyntaxUid = channel.transferSyntaxUid ?? EXPLICIT_VR_LE;
      for await (const elements of this.matches(parsed, source, channel)) {
        // A value outside ASCII is declared in the response that holds it (PS3.4 C.4.1.1.3.1).
        const charset = Object.values(elements).some((v) => typeof v === 'string' && /[^\x00-\x7f]/.test(v)) ? 'ISO_IR 192' : undefined;
        const identifier = charset ? { SpecificCharacterSet: charset, ...elements } : elements;
        // Encoded before anything of the response is sent: a failure leaves the peer no half message.
        await channel.pending(encodeMatch(identifier, transferSyntaxUid, matches));
        matches++;
      }
    } catch (err) {
      const code = isDfError(err) ? err.code : 'DF_ERR_QUERY_RESPONSE_FAILED';
      log.error({ code, err, matches, queryLevel: parsed.level, model }, 'C-FIND failed');
      return channel.final(UNABLE_TO_PROCESS, isDfError(err) ? err.message : `${code}: ${(err as Error).message}`);
    }
    if (channel.cancelled()) {
      log.info({ queryLevel: parsed.level, model, matches }, 'C-FIND cancelled');
      // PS3.4 C.4.1.2.3: the final response to a cancelled query says Cancel.
      return channel.final(CANCEL);
    }
    log.info({ queryLevel: parsed.level, model, matches }, 'C-FIND answered');
    return channel.final(SUCCESS);
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

// dcmjs-dimse set dcmjs's log to errors only whenever it read a data set, so that a value it
// cannot read quite right is no console line per query; kept.
dcmjs.log.setLevel('error');

/**
 * An identifier (a data set without meta header) read by dcmjs as dcmjs-dimse read it, errors
 * ignored, naturalized: keywords to values. rawIdentifierValues corrects what dcmjs alters.
 */
export function readIdentifier(dataset: Buffer, transferSyntaxUid: string): Record<string, unknown> {
  if (dataset.length === 0) return {};
  const stream = new dcmjs.data.ReadBufferStream(dataset.buffer.slice(dataset.byteOffset, dataset.byteOffset + dataset.byteLength));
  const syntax = transferSyntaxUid === IMPLICIT_VR_LE || transferSyntaxUid === EXPLICIT_VR_BE ? transferSyntaxUid : EXPLICIT_VR_LE;
  const dict = (dcmjs.data.DicomMessage as unknown as { _read(s: unknown, syntax: string, o: { ignoreErrors: boolean }): object })._read(
    stream,
    syntax,
    {
      ignoreErrors: true,
    },
  );
  return dictionary.naturalizeDataset(dict) as Record<string, unknown>;
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
