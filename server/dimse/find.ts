import dimse from 'dcmjs-dimse';
import dcmjs from 'dcmjs';
import type { Logger } from 'pino';
import { queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import { isDfError } from '../../core/errors.ts';
import { DatasetWalker } from '../../core/dicom/dataset-walker.ts';
import { IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { parseIdentifier, type ParsedQuery } from '../../core/query/identifier.ts';
import { buildResponse, matchesRow } from '../../core/query/match.ts';
import type { HierarchyFilter, QuerySource } from '../../core/store/index-store.ts';

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

/**
 * C-FIND SCP: the index prefilters by unique keys, the pure matcher of core/query decides, and
 * each match becomes one pending response holding exactly the requested keys.
 */
export class FindService {
  answer(request: CFindRequest, source: QuerySource, log: Logger, raw?: { dataset: Buffer; transferSyntaxUid: string }): CFindResponseT[] {
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
      return [final(request, IDENTIFIER_DOES_NOT_MATCH, comment)];
    }
    try {
      const matches = this.matches(parsed, source);
      const charset = matches.some((m) => Object.values(m).some((v) => typeof v === 'string' && /[^\x00-\x7f]/.test(v)))
        ? 'ISO_IR 192'
        : undefined;
      const pending = matches.map((elements) => {
        const response = CFindResponse.fromRequest(request);
        response.setStatus(Status.Pending);
        response.setDataset(new Dataset(charset ? { SpecificCharacterSet: charset, ...elements } : elements, EXPLICIT_VR_LE));
        return response;
      });
      log.info({ queryLevel: parsed.level, model, matches: pending.length }, 'C-FIND answered');
      return [...pending, final(request, Status.Success)];
    } catch (err) {
      log.error({ err }, 'C-FIND failed');
      return [final(request, UNABLE_TO_PROCESS, (err as Error).message)];
    }
  }

  private matches(parsed: ParsedQuery, source: QuerySource): Record<string, unknown>[] {
    const filter: HierarchyFilter = {};
    for (const f of parsed.uniqueKeyFilters) {
      if (f.keyword === 'PatientID') filter.patientId = f.uids[0];
      if (f.keyword === 'StudyInstanceUID') filter.studyInstanceUids = [...f.uids];
      if (f.keyword === 'SeriesInstanceUID') filter.seriesInstanceUids = [...f.uids];
      if (f.keyword === 'SOPInstanceUID') filter.sopInstanceUids = [...f.uids];
    }
    const out: Record<string, unknown>[] = [];
    switch (parsed.level) {
      case 'PATIENT':
        for (const p of source.patients(filter)) {
          const rows = { patient: p.attributes };
          if (matchesRow(parsed, rows)) {
            out.push(
              buildResponse(parsed, rows, {
                NumberOfPatientRelatedStudies: String(p.numberOfStudies),
                NumberOfPatientRelatedSeries: String(p.numberOfSeries),
                NumberOfPatientRelatedInstances: String(p.numberOfInstances),
              }),
            );
          }
        }
        break;
      case 'STUDY':
        for (const s of source.studies(filter)) {
          const rows = {
            patient: s.patient,
            study: { ...s.study, ModalitiesInStudy: s.modalitiesInStudy.join('\\'), SOPClassesInStudy: s.sopClassesInStudy.join('\\') },
          };
          if (matchesRow(parsed, rows)) {
            out.push(
              buildResponse(parsed, rows, {
                NumberOfStudyRelatedSeries: String(s.numberOfSeries),
                NumberOfStudyRelatedInstances: String(s.numberOfInstances),
              }),
            );
          }
        }
        break;
      case 'SERIES':
        for (const s of source.series(filter)) {
          const rows = { patient: s.patient, study: s.study, series: s.series };
          if (matchesRow(parsed, rows)) {
            out.push(buildResponse(parsed, rows, { NumberOfSeriesRelatedInstances: String(s.numberOfInstances) }));
          }
        }
        break;
      case 'IMAGE':
        for (const i of source.instances(filter)) {
          const rows = { patient: i.patient, study: i.study, series: i.series, instance: i.instance };
          if (matchesRow(parsed, rows)) out.push(buildResponse(parsed, rows, {}));
        }
        break;
    }
    return out;
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
