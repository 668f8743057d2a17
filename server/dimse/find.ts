import dimse from 'dcmjs-dimse';
import dcmjs from 'dcmjs';
import type { Logger } from 'pino';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import { isDfError } from '../../core/errors.ts';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { parseIdentifier, type ParsedQuery } from '../../core/query/identifier.ts';
import { buildResponse, matchesRow } from '../../core/query/match.ts';
import type { HierarchyFilter, PageRequest, QuerySource } from '../../core/store/index-store.ts';

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

/** Where the responses of one C-FIND go, and whether the peer asked to stop (C-CANCEL). */
export interface FindChannel {
  /** Sends one response; resolves once the connection can take more. */
  send(response: CFindResponseT): Promise<void>;
  cancelled(): boolean;
}

/**
 * C-FIND SCP: the index prefilters by unique keys, the pure matcher of core/query decides, and
 * each match becomes one pending response holding exactly the requested keys. The matches are
 * read a page at a time and each response is sent as it is made, waiting while the peer reads;
 * between pages the connection's input is read, so a C-CANCEL ends the answer at once (FE00).
 */
export class FindService {
  async answer(request: CFindRequest, source: QuerySource, log: Logger, raw: { dataset: Buffer; transferSyntaxUid: string } | undefined, channel: FindChannel): Promise<void> {
    const model = request.getAffectedSopClassUid() === queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelFind ? 'PATIENT' : 'STUDY';
    let parsed: ParsedQuery;
    try {
      const identifier = { ...(request.getDataset()?.getElements() ?? {}), ...(raw ? rawUidValues(raw.dataset, raw.transferSyntaxUid) : {}) };
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
      for await (const elements of this.matches(parsed, source, channel)) {
        // A value outside ASCII is declared in the response that holds it (PS3.4 C.4.1.1.3.1).
        const charset = Object.values(elements).some((v) => typeof v === 'string' && /[^\x00-\x7f]/.test(v)) ? 'ISO_IR 192' : undefined;
        const response = CFindResponse.fromRequest(request);
        response.setStatus(Status.Pending);
        response.setDataset(new Dataset(charset ? { SpecificCharacterSet: charset, ...elements } : elements, EXPLICIT_VR_LE));
        await channel.send(response);
        matches++;
      }
    } catch (err) {
      log.error({ err, matches }, 'C-FIND failed');
      return channel.send(final(request, UNABLE_TO_PROCESS, (err as Error).message));
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
    const filter: HierarchyFilter = {};
    for (const f of parsed.uniqueKeyFilters) {
      if (f.keyword === 'PatientID') filter.patientId = f.uids[0];
      if (f.keyword === 'StudyInstanceUID') filter.studyInstanceUids = [...f.uids];
      if (f.keyword === 'SeriesInstanceUID') filter.seriesInstanceUids = [...f.uids];
      if (f.keyword === 'SOPInstanceUID') filter.sopInstanceUids = [...f.uids];
    }
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
 * page answers whole), or a cancel. Between pages the event loop reads the connection's input.
 */
async function* pages<R extends { key?: string }>(read: (page: PageRequest) => R[], channel: FindChannel): AsyncGenerator<R> {
  for (let after: string | undefined; ; ) {
    const rows = read({ after, limit: PAGE_ROWS });
    for (const row of rows) {
      if (channel.cancelled()) return;
      yield row;
    }
    after = rows.at(-1)?.key;
    if (rows.length < PAGE_ROWS || after === undefined || channel.cancelled()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

// dcmjs's tag-keyed dictionary does not enumerate; its keyword-keyed nameMap does.
const uiTags = new Map<number, string>(
  Object.values(dictionary.nameMap as Record<string, { name: string; vr: string; tag: string }>)
    .filter((entry) => entry.vr === 'UI' && /^\([0-9A-F]{4},[0-9A-F]{4}\)$/.test(entry.tag))
    .map((entry) => [parseInt(entry.tag.slice(1, 5) + entry.tag.slice(6, 10), 16), entry.name]),
);

/**
 * The identifier's UI values as sent. dcmjs drops every character of a UID but digits and dots
 * when it parses, which would turn a query for a non-conforming stored UID (or a malformed one
 * that should be refused) into a different query.
 */
export function rawUidValues(dataset: Buffer, transferSyntaxUid: string): Record<string, string> {
  const walker = new DatasetWalker({ explicitVr: transferSyntaxUid !== IMPLICIT_VR_LE, littleEndian: true, captureMaxBytes: 64 * 1024 });
  try {
    walker.push(dataset);
    walker.end();
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const [tag, element] of walker.elements) {
    const keyword = uiTags.get(tag);
    if (keyword && (element.vr === '' || element.vr === 'UI')) out[keyword] = element.value.toString('latin1').replace(/[\0 ]+$/, '');
  }
  return out;
}

function final(request: CFindRequest, status: number, comment?: string): CFindResponseT {
  const response = CFindResponse.fromRequest(request);
  response.setStatus(status);
  if (comment) response.setErrorComment(comment.slice(0, 64));
  return response;
}
