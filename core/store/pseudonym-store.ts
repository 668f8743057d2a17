/**
 * The re-identification table of the deidentify step: which pseudonym and date offset stand for
 * which patient, and which replacement UIDs stand for which study and series. The same original
 * always gets the same replacement (the first one recorded wins, also when nodes race), so a
 * patient keeps one pseudonym across studies and runs. Reading it re-identifies people: callers
 * that show it to a person check their role and write the audit log.
 */

export type PseudonymKind = 'patient' | 'study' | 'series';

export interface PseudonymRecord {
  kind: PseudonymKind;
  /** Patient: the key "<PatientID>\\<IssuerOfPatientID>"; study and series: the original UID. */
  original: string;
  pseudonym: string;
  /** Patient: days added to every date of the patient's objects (negative: earlier). */
  dateOffsetDays?: number;
  /** Patient: the original Patient's Name, for the people allowed to re-identify. */
  originalName?: string;
  createdAt: string;
  /** What recorded it: "pipeline <name>, job <id>". */
  createdBy?: string;
}

export interface NewPseudonym {
  kind: PseudonymKind;
  original: string;
  pseudonym: string;
  dateOffsetDays?: number;
  originalName?: string;
}

export interface PseudonymStore {
  /**
   * A per-installation secret (32 random bytes, hex), created on first use and shared by every
   * node on the index: replacement UIDs derive from it, so runs and nodes agree.
   */
  secret(name: string): Promise<string>;
  /** Records each row unless its (kind, original) is already there; returns the rows as stored. */
  record(rows: NewPseudonym[], createdBy: string): Promise<PseudonymRecord[]>;
  /** The rows whose original or pseudonym equals `value` (either way round; a Patient ID alone matches "ID\\"), of a kind or all. */
  find(value: string, kind?: PseudonymKind): Promise<PseudonymRecord[]>;
}
