import fs from 'node:fs';
import path from 'node:path';
import { fileIdPath, parseFileSet, type FileSetEntry } from '../dicom/dicomdir.ts';
import type { Attributes, HierarchyFilter, InstanceRow, PatientRow, QuerySource, SeriesRow, StudyRow } from './index-store.ts';

const INDEX_FILE = '.dicomflow-fileset.json';

/**
 * A DICOM file-set kept by the dicomdir step, as a Query/Retrieve source (PMOD answers queries
 * from its DICOMDIR the same way). It reads the step's own index of the file-set, which holds
 * the DICOMDIR's directory keys, so answers match what the DICOMDIR says.
 */
export class DicomdirStore implements QuerySource {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The file-set's entries the filter's unique keys select, read without blocking the loop. */
  private async entries(filter: HierarchyFilter): Promise<FileSetEntry[]> {
    let text: string;
    try {
      text = await fs.promises.readFile(path.join(this.root, INDEX_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const all = parseFileSet(text).entries;
    const inList = (values: string[] | undefined, v: string) => values === undefined || values.length === 0 || values.includes(v);
    return all.filter(
      (e) =>
        (filter.patientId === undefined || e.keys.PatientID === filter.patientId) &&
        inList(filter.studyInstanceUids, e.studyInstanceUid) &&
        inList(filter.seriesInstanceUids, e.seriesInstanceUid) &&
        inList(filter.sopInstanceUids, e.sopInstanceUid),
    );
  }

  async patients(filter: HierarchyFilter): Promise<PatientRow[]> {
    const groups = groupBy(await this.entries(filter), (e) => e.patientKey);
    return [...groups.values()].map((es) => ({
      attributes: patientOf(es[0]),
      numberOfStudies: new Set(es.map((e) => e.studyInstanceUid)).size,
      numberOfSeries: new Set(es.map((e) => e.seriesInstanceUid)).size,
      numberOfInstances: es.length,
    }));
  }

  async studies(filter: HierarchyFilter): Promise<StudyRow[]> {
    const groups = groupBy(await this.entries(filter), (e) => e.studyInstanceUid);
    return [...groups.values()].map((es) => ({
      patient: patientOf(es[0]),
      study: studyOf(es[0]),
      numberOfSeries: new Set(es.map((e) => e.seriesInstanceUid)).size,
      numberOfInstances: es.length,
      modalitiesInStudy: [...new Set(es.map((e) => e.keys.Modality).filter((m) => m !== ''))],
      sopClassesInStudy: [...new Set(es.map((e) => e.sopClassUid))],
    }));
  }

  async series(filter: HierarchyFilter): Promise<SeriesRow[]> {
    const groups = groupBy(await this.entries(filter), (e) => e.seriesInstanceUid);
    return [...groups.values()].map((es) => ({
      patient: patientOf(es[0]),
      study: studyOf(es[0]),
      series: seriesOf(es[0]),
      numberOfInstances: es.length,
    }));
  }

  async instances(filter: HierarchyFilter): Promise<InstanceRow[]> {
    return (await this.entries(filter)).map((e) => {
      const filePath = fileIdPath(this.root, e.fileId);
      return {
        patient: patientOf(e),
        study: studyOf(e),
        series: seriesOf(e),
        instance: { SOPInstanceUID: e.sopInstanceUid, SOPClassUID: e.sopClassUid, InstanceNumber: e.keys.InstanceNumber },
        objectPath: e.fileId.join('/'),
        filePath,
        transferSyntaxUid: e.transferSyntaxUid,
        createdBy: 'dicomdir',
        createdAt: '',
        source: 'pipeline' as const,
      };
    });
  }
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    out.set(k, [...(out.get(k) ?? []), item]);
  }
  return out;
}

const patientOf = (e: FileSetEntry): Attributes => ({ PatientName: e.keys.PatientName, PatientID: e.keys.PatientID });
const studyOf = (e: FileSetEntry): Attributes => ({
  StudyInstanceUID: e.studyInstanceUid,
  StudyDate: e.keys.StudyDate,
  StudyTime: e.keys.StudyTime,
  StudyDescription: e.keys.StudyDescription,
  StudyID: e.keys.StudyID,
  AccessionNumber: e.keys.AccessionNumber,
});
const seriesOf = (e: FileSetEntry): Attributes => ({
  SeriesInstanceUID: e.seriesInstanceUid,
  Modality: e.keys.Modality,
  SeriesNumber: e.keys.SeriesNumber,
});
