import { createHmac } from 'node:crypto';
import type { Action, Profile } from './profile.ts';

/**
 * Applies a resolved Table E.1-1 profile to a dcmjs data set dictionary (tags as keys, private
 * elements included), in place. Pixel data is never touched. Beyond the table:
 *
 * - Every UI value (any depth, listed or not) that is not a well-known UID (PS3.6 "1.2.840.10008."
 *   roots) or a class UID (SOP class, transfer syntax, coding scheme…) is replaced by a UID
 *   derived from the original with an HMAC under the installation secret: the same original gives
 *   the same replacement in every object, study and run, so references between objects (Referenced
 *   SOP Instance, Source Image, Frame of Reference, Referenced Series…) still match.
 * - With modified dates, every DA and the date of every DT is shifted by the patient's offset,
 *   listed or not (Radiopharmaceutical Start DateTime is not in the table, yet SUV decay needs it
 *   consistent with Series Date). Times are kept: the offset is whole days, so intervals (frame
 *   timing, injection to scan) are unchanged.
 * - Private elements go unless the Retain Safe Private option lists them (creator, group,
 *   element byte); a private creator stays only when an element of its block stays.
 * - Person names the table does not list are replaced by a dummy, and overlay/curve repeating
 *   groups go whole when their data goes (a half overlay plane would not be valid).
 * - A last pass cleans every remaining text value of the original patient's name, IDs, accession
 *   number and birth date (the "C" of Clean Descriptors, and a safety net for the rest).
 */

export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
  _rawValue?: unknown;
  [k: string]: unknown;
}
export type DcmjsDict = Record<string, DcmjsElement>;

export interface SafePrivateTag {
  /** 4 hex digits, odd. */
  group: string;
  creator: string;
  /** The element's low byte, 2 hex digits (its place in the creator's block). */
  element: string;
}

/** The original identifiers a cleaned value must not keep. */
export interface ScrubTerms {
  /** Patient ID, Other Patient IDs, Accession Number, Birth Date: removed from any text. */
  identifiers: string[];
  /** The patient's name and its components (3 characters or more): removed from free text and names. */
  names: string[];
}

export interface DeidentifyContext {
  profile: Profile;
  /** The replacement for a UID (consistent; see uidFor). */
  uid(original: string): string;
  /** Days to add to dates (modified dates), else undefined. */
  dateOffsetDays?: number;
  pseudonym: string;
  scrub: ScrubTerms;
  safePrivate: SafePrivateTag[];
}

export interface DeidentifyCounts {
  removed: number;
  replaced: number;
  scrubbed: number;
}

const WELL_KNOWN_ROOT = '1.2.840.10008.';
// Unlisted UI elements that name a class or a scheme, not an instance: kept whatever their root
// (a vendor's private SOP class too). Everything else of VR UI is replaced.
const CLASS_UID_TAGS = new Set([
  0x00020002, 0x00020010, 0x00020012, 0x00041510, 0x00041512, 0x0004151a, 0x00080016, 0x0008001a, 0x0008001b, 0x00080062, 0x0008010c,
  0x0008010d, 0x00080118, 0x00081150, 0x0008115a,
]);
const PATIENT_NAME = 0x00100010;
const PATIENT_ID = 0x00100020;
const PIXEL_DATA = 0x7fe00010;
const TEXT_VRS = new Set(['LO', 'SH', 'ST', 'LT', 'UT', 'UC', 'PN']);
const SCRUBBED_VRS = new Set([...TEXT_VRS, 'CS', 'AE', 'UR']);
const NUMERIC_VRS = new Set(['FL', 'FD', 'SL', 'SS', 'UL', 'US', 'SV', 'UV', 'DS', 'IS']);
const DUMMY_TEXT = 'ANONYMIZED';
// A family name component with its delimiter: a name without "^" reads as the retired PN form.
const DUMMY_NAME = 'ANONYMOUS^';

/** A UID 2.25.<128 bits> from HMAC-SHA-256(secret, original), marked as an RFC 9562 version 8 UUID (PS3.5 B.2). */
export function uidFor(secretHex: string, original: string): string {
  const bytes = createHmac('sha256', Buffer.from(secretHex, 'hex')).update(`uid\0${original}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

export function isReplaceableUid(tag: number, value: string, listed: boolean): boolean {
  if (value === '' || value.startsWith(WELL_KNOWN_ROOT)) return false;
  return listed || !CLASS_UID_TAGS.has(tag);
}

/** YYYYMMDD + days, or undefined when the value is not a full date. */
export function shiftDate(value: string, days: number): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value.trim());
  if (!m) return undefined;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (Number.isNaN(t)) return undefined;
  const d = new Date(t + days * 86_400_000);
  if (d.getUTCFullYear() < 1 || d.getUTCFullYear() > 9999) return undefined;
  return `${String(d.getUTCFullYear()).padStart(4, '0')}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

/** A DT with its date shifted (time, fraction and UTC offset kept), or undefined without a full date. */
export function shiftDateTime(value: string, days: number): string | undefined {
  const v = value.trim();
  if (v.length < 8) return undefined;
  const date = shiftDate(v.slice(0, 8), days);
  return date === undefined ? undefined : date + v.slice(8);
}

function dummyValue(vr: string): unknown {
  switch (vr) {
    case 'PN':
      return { Alphabetic: DUMMY_NAME };
    case 'DA':
      return '19000101';
    case 'DT':
      return '19000101000000';
    case 'TM':
      return '000000';
    case 'AS':
      return '000D';
    case 'UR':
      return '';
    default:
      return NUMERIC_VRS.has(vr) ? 0 : DUMMY_TEXT;
  }
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'Alphabetic' in value) {
    const pn = value as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    return [pn.Alphabetic, pn.Ideographic, pn.Phonetic].filter(Boolean).join('=');
  }
  return value === undefined || value === null ? '' : String(value);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class DatasetDeidentifier {
  readonly counts: DeidentifyCounts = { removed: 0, replaced: 0, scrubbed: 0 };
  private readonly ctx: DeidentifyContext;
  private readonly identifierPattern?: RegExp;
  private readonly namePattern?: RegExp;

  constructor(ctx: DeidentifyContext) {
    this.ctx = ctx;
    const pattern = (terms: string[]) => {
      const unique = [...new Set(terms.filter((t) => t.length > 0))].sort((a, b) => b.length - a.length);
      return unique.length > 0 ? new RegExp(unique.map(escapeRegExp).join('|'), 'gi') : undefined;
    };
    this.identifierPattern = pattern(ctx.scrub.identifiers);
    this.namePattern = pattern(ctx.scrub.names);
  }

  /** De-identifies a data set (or a sequence item) in place. */
  apply(dict: DcmjsDict): void {
    const { profile } = this.ctx;
    const creators = new Map<number, string>();
    for (const key of Object.keys(dict)) {
      const tag = Number.parseInt(key, 16);
      const element = tag & 0xffff;
      if ((tag >>> 16) % 2 === 1 && element >= 0x10 && element <= 0xff) creators.set(tag, text(dict[key].Value?.[0]).trim());
    }
    const keptBlocks = new Set<number>();
    for (const key of Object.keys(dict)) {
      const tag = Number.parseInt(key, 16);
      const group = tag >>> 16;
      const element = tag & 0xffff;
      const el = dict[key];
      if (tag === PIXEL_DATA) continue;
      if (element === 0) {
        // Group lengths would be wrong after the changes; the writer needs none.
        delete dict[key];
        continue;
      }
      if (group % 2 === 1) {
        if (element >= 0x10 && element <= 0xff) continue; // decided once the block's elements are
        const creatorTag = ((group << 16) | (element >>> 8)) >>> 0;
        const creator = creators.get(creatorTag);
        const safe =
          profile.options.retainSafePrivate &&
          element >= 0x1000 &&
          creator !== undefined &&
          this.ctx.safePrivate.some(
            (s) => Number.parseInt(s.group, 16) === group && s.creator === creator && Number.parseInt(s.element, 16) === (element & 0xff),
          );
        if (!safe) {
          this.remove(dict, key);
          continue;
        }
        keptBlocks.add(creatorTag);
        this.keep(tag, el, false);
        continue;
      }
      // PS3.3 C.9 / C.10: overlay and curve repeating groups go as a whole.
      if ((group & 0xff01) === 0x6000 || (group & 0xff01) === 0x5000) {
        this.remove(dict, key);
        continue;
      }
      const action = profile.actionFor(tag);
      if (action === undefined) this.unlisted(tag, el);
      else this.act(dict, key, tag, el, action);
    }
    for (const creatorTag of creators.keys()) {
      if (!keptBlocks.has(creatorTag)) this.remove(dict, creatorTag.toString(16).toUpperCase().padStart(8, '0'));
    }
    for (const key of Object.keys(dict)) this.scrub(dict[key]);
  }

  /** Applies a table action. */
  private act(dict: DcmjsDict, key: string, tag: number, el: DcmjsElement, action: Action): void {
    if ((tag === PATIENT_NAME || tag === PATIENT_ID) && (action === 'Z' || action === 'D')) {
      this.set(el, [tag === PATIENT_NAME ? { Alphabetic: `${this.ctx.pseudonym}^` } : this.ctx.pseudonym]);
      return;
    }
    switch (action) {
      case 'X':
        this.remove(dict, key);
        return;
      case 'Z':
        this.set(el, []);
        return;
      case 'D':
        if (el.vr === 'SQ') this.items(el);
        else if (el.vr === 'UI') this.replaceUids(tag, el, true);
        else this.set(el, [dummyValue(el.vr)]);
        return;
      case 'K':
        this.keep(tag, el, true);
        return;
      case 'C':
        this.clean(tag, el);
        return;
      case 'U':
      case 'U*':
        if (el.vr === 'SQ') this.items(el);
        else this.replaceUids(tag, el, true);
        return;
    }
  }

  /** An attribute Table E.1-1 does not list. */
  private unlisted(tag: number, el: DcmjsElement): void {
    switch (el.vr) {
      case 'SQ':
        this.items(el);
        return;
      case 'UI':
        if (!this.ctx.profile.options.retainUids) this.replaceUids(tag, el, false);
        return;
      case 'DA':
      case 'DT':
        if (this.ctx.dateOffsetDays !== undefined) this.shift(el);
        return;
      case 'PN':
        if ((el.Value ?? []).some((v) => text(v) !== '')) this.set(el, [{ Alphabetic: DUMMY_NAME }]);
        return;
    }
  }

  /** K: kept as it is; its items still go through the profile. */
  private keep(tag: number, el: DcmjsElement, listed: boolean): void {
    if (el.vr === 'SQ') this.items(el);
    else if (el.vr === 'UI' && !listed && !this.ctx.profile.options.retainUids) this.replaceUids(tag, el, false);
  }

  /** C: dates shifted by the patient's offset (times kept), text cleaned, sequences walked. */
  private clean(tag: number, el: DcmjsElement): void {
    if (el.vr === 'SQ') this.items(el);
    else if (el.vr === 'DA' || el.vr === 'DT') {
      if (this.ctx.dateOffsetDays !== undefined) this.shift(el);
    } else if (el.vr === 'UI') this.replaceUids(tag, el, true);
    // Text: the scrub pass over every element removes the patient's identifiers.
  }

  private shift(el: DcmjsElement): void {
    const days = this.ctx.dateOffsetDays!;
    const values = (el.Value ?? []).map((v) => {
      const s = text(v);
      if (s === '') return s;
      // A value that is not a full date cannot be shifted; it goes rather than stay as it was.
      return (el.vr === 'DA' ? shiftDate(s, days) : shiftDateTime(s, days)) ?? '';
    });
    this.set(el, values.every((v) => v === '') ? [] : values);
  }

  private replaceUids(tag: number, el: DcmjsElement, listed: boolean): void {
    const values = el.Value ?? [];
    if (!values.some((v) => isReplaceableUid(tag, text(v).trim(), listed))) return;
    this.set(
      el,
      values.map((v) => {
        const s = text(v).trim();
        return isReplaceableUid(tag, s, listed) ? this.ctx.uid(s) : s;
      }),
    );
  }

  private items(el: DcmjsElement): void {
    for (const item of (el.Value ?? []) as DcmjsDict[]) if (item && typeof item === 'object') this.apply(item);
  }

  private cleanText(value: string, names: RegExp | undefined): string {
    let after = this.identifierPattern ? value.replace(this.identifierPattern, '') : value;
    if (names) after = after.replace(names, '');
    // What was around a removed name stays readable: "CT of <name>, follow-up" → "CT of, follow-up".
    return after === value
      ? value
      : after
          .replace(/\(\s*\)|\[\s*\]/g, '')
          .replace(/\s{2,}/g, ' ')
          .replace(/\s+([,.;:])/g, '$1')
          .trim();
  }

  private scrub(el: DcmjsElement): void {
    if (!SCRUBBED_VRS.has(el.vr) || !el.Value) return;
    const names = TEXT_VRS.has(el.vr) ? this.namePattern : undefined;
    if (!names && !this.identifierPattern) return;
    let changed = false;
    const cleaned = el.Value.map((v) => {
      if (el.vr === 'PN' && v && typeof v === 'object') {
        const pn = { ...(v as Record<string, string>) };
        for (const k of Object.keys(pn)) {
          if (typeof pn[k] !== 'string') continue;
          const after = this.cleanText(pn[k], names);
          if (after !== pn[k]) {
            pn[k] = after;
            changed = true;
          }
        }
        return pn;
      }
      if (typeof v !== 'string') return v;
      const after = this.cleanText(v, names);
      if (after !== v) changed = true;
      return after;
    });
    if (changed) {
      this.counts.scrubbed++;
      this.set(el, cleaned);
    }
  }

  private set(el: DcmjsElement, values: unknown[]): void {
    el.Value = values;
    delete el._rawValue;
    this.counts.replaced++;
  }

  private remove(dict: DcmjsDict, key: string): void {
    if (key in dict) {
      delete dict[key];
      this.counts.removed++;
    }
  }
}
