import path from 'node:path';
import { engineServices } from '../../core/jobs/services.ts';
import { definePlugin } from '../../core/plugin.ts';
import type { SafePrivateTag } from './deidentify-dataset.ts';
import { PS315_EDITION, type ProfileOptions } from './profile.ts';
import type { DeidentifiedFile, DeidentifyFilesArg, PatientIdentity, PatientPseudonym } from './tasks.ts';
import { pseudonymFor } from './tasks.ts';

const TASKS = new URL('./tasks.ts', import.meta.url).href;
/** The installation secret the replacement UIDs, pseudonyms and date offsets derive from. */
export const SECRET_NAME = 'deidentify';

/**
 * De-identification (PS3.15 Annex E, Basic Application Level Confidentiality Profile, Table
 * E.1-1) with the options a PET/MR research site needs, chosen per pipeline. The defaults keep
 * what SUV and kinetic modelling need: patient characteristics (weight, size, sex, age) and the
 * temporal information, with every date moved by one offset per patient. Replacement patient
 * identities and dates come from the pseudonym table in the index, replacement UIDs from an HMAC
 * under a per-installation secret kept there too: the same original gets the same replacement
 * in every study and run, on every node.
 *
 * The de-identified copies are emitted as new instances for a following store or route step
 * (objects: "emitted"); the originals are taken out of the job's inputs for the steps after this
 * one, so none of them can be sent or filed by mistake.
 */
export default definePlugin({
  name: 'deidentify',
  version: '1.0.0',
  description: `De-identify instances (PS3.15 Annex E basic profile, Table E.1-1 as in PS3.15 ${PS315_EDITION}; by default retaining patient characteristics and longitudinal temporal information with modified dates, device identity, cleaning descriptors and structured content) with consistent pseudonyms and UIDs.`,
  runsIn: 'main',
  usesPool: true,
  consumes: ['instances'],
  produces: ['instances', 'tables'],
  defaultTimeoutSeconds: 1800,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      objects: {
        enum: ['inputs', 'emitted', 'all'],
        default: 'inputs',
        description: 'inputs: the instances the step works on; emitted: the DICOM objects earlier steps emitted; all: both.',
      },
      longitudinalTemporal: {
        enum: ['modified', 'full', 'remove'],
        default: 'modified',
        description:
          'Retain Longitudinal Temporal Information: "modified" moves every date by one offset per patient (times kept, so intervals such as injection to scan are unchanged), "full" keeps dates as they are, "remove" applies the basic profile (dates emptied or removed).',
      },
      retainPatientCharacteristics: {
        type: 'boolean',
        default: true,
        description:
          "Retain Patient Characteristics Option: keep the patient's age, sex, size and weight (SUV needs them), ethnic group, smoking and pregnancy status.",
      },
      retainDeviceIdentity: {
        type: 'boolean',
        default: true,
        description: 'Retain Device Identity Option: keep device serial numbers, station names and similar.',
      },
      retainInstitutionIdentity: {
        type: 'boolean',
        default: false,
        description: 'Retain Institution Identity Option: keep the institution name, address and department.',
      },
      retainUids: {
        type: 'boolean',
        default: false,
        description: 'Retain UIDs Option: keep the original UIDs (off: every instance UID is replaced consistently).',
      },
      cleanDescriptors: {
        type: 'boolean',
        default: true,
        description:
          "Clean Descriptors Option: keep study, series and protocol descriptions and comments, cleaned of the patient's name, IDs, accession number and birth date (off: removed as the basic profile says).",
      },
      cleanStructuredContent: {
        type: 'boolean',
        default: true,
        description:
          'Clean Structured Content Option: keep SR content and acquisition context, cleaned like descriptors (off: emptied or removed).',
      },
      safePrivateTags: {
        type: 'array',
        default: [],
        description:
          'Retain Safe Private Option: the private elements known to hold no identifying information, kept; every other private element is removed. Each names its group, private creator and element byte, e.g. { "group": "0009", "creator": "GEMS_PETD_01", "element": "05" } for (0009,xx05).',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['group', 'creator', 'element'],
          properties: {
            group: { type: 'string', pattern: '^[0-9A-Fa-f]{3}[13579BDFbdf]$', description: 'Odd group, 4 hex digits.' },
            creator: { type: 'string', minLength: 1, maxLength: 64, description: 'Private Creator value of the block.' },
            element: { type: 'string', pattern: '^[0-9A-Fa-f]{2}$', description: "The element's low byte within the block, 2 hex digits." },
          },
        },
      },
      burnedInAnnotation: {
        enum: ['refuse', 'fail', 'allow'],
        default: 'refuse',
        description:
          'Objects that may show identifying text or a face in their pixels (Burned In Annotation or Recognizable Visual Features YES; SC, US, XC, OT modality or a Secondary Capture SOP class without Burned In Annotation NO): "refuse" leaves them out (listed in the table and the log), "fail" fails the step, "allow" de-identifies their header only.',
      },
      batchSize: { type: 'integer', minimum: 1, maximum: 1000, default: 25, description: 'Objects per task in the worker pool.' },
    },
  },
  async run(ctx, options) {
    const services = engineServices(ctx.services);
    const store = services.pseudonyms;
    if (!store) throw new Error('this server has no pseudonym table (services.pseudonyms)');
    const files: string[] = [];
    if (options.objects !== 'emitted') for (const input of ctx.inputs) files.push(input.path);
    if (options.objects !== 'inputs') for (const o of ctx.previousOutputs) if (o.kind === 'instance' && o.path) files.push(o.path);
    // The originals must not reach a later step by mistake (a route of "inputs").
    ctx.keepInputs([]);
    if (files.length === 0) {
      ctx.log.info('no objects to de-identify');
      return;
    }
    const batches: string[][] = [];
    for (let i = 0; i < files.length; i += options.batchSize) batches.push(files.slice(i, i + options.batchSize));
    const secretHex = await store.secret(SECRET_NAME);

    const identities = (
      await Promise.all(batches.map((b) => ctx.runTask<PatientIdentity[]>(TASKS, 'identifyPatients', { files: b })))
    ).flat();
    const names = new Map(identities.map((i) => [i.key, i.name]));
    const createdBy = `pipeline ${ctx.job.pipeline}, job ${ctx.job.id}`;
    const recorded = await store.record(
      [...names].map(([key, name]) => ({ kind: 'patient' as const, original: key, ...pseudonymFor(secretHex, key), originalName: name })),
      createdBy,
    );
    const patients: Record<string, PatientPseudonym> = {};
    for (const r of recorded) patients[r.original] = { pseudonym: r.pseudonym, dateOffsetDays: r.dateOffsetDays ?? 0 };
    ctx.progress(0.1, `${recorded.length} patient(s)`);

    const profile: ProfileOptions = {
      retainSafePrivate: options.safePrivateTags.length > 0,
      retainUids: options.retainUids,
      retainDeviceIdentity: options.retainDeviceIdentity,
      retainInstitutionIdentity: options.retainInstitutionIdentity,
      retainPatientCharacteristics: options.retainPatientCharacteristics,
      longitudinalTemporal: options.longitudinalTemporal,
      cleanDescriptors: options.cleanDescriptors,
      cleanStructuredContent: options.cleanStructuredContent,
    };
    const outDir = path.join(ctx.outputDir, 'deidentified');
    let done = 0;
    const results = (
      await Promise.all(
        batches.map(async (b) => {
          const arg: DeidentifyFilesArg = {
            files: b,
            outDir,
            secretHex,
            patients,
            profile,
            safePrivate: options.safePrivateTags as SafePrivateTag[],
            burnedIn: options.burnedInAnnotation,
          };
          const r = await ctx.runTask<DeidentifiedFile[]>(TASKS, 'deidentifyFiles', arg);
          done += b.length;
          ctx.progress(0.1 + (0.9 * done) / files.length, `${done} of ${files.length} objects`);
          return r;
        }),
      )
    ).flat();

    const written = results.filter((r) => r.status === 'written');
    const uidRows = new Map<string, { kind: 'study' | 'series'; original: string; pseudonym: string }>();
    for (const r of written) {
      if (r.studyInstanceUid)
        uidRows.set(`study ${r.studyInstanceUid[0]}`, { kind: 'study', original: r.studyInstanceUid[0], pseudonym: r.studyInstanceUid[1] });
      if (r.seriesInstanceUid)
        uidRows.set(`series ${r.seriesInstanceUid[0]}`, {
          kind: 'series',
          original: r.seriesInstanceUid[0],
          pseudonym: r.seriesInstanceUid[1],
        });
    }
    await store.record([...uidRows.values()], createdBy);
    for (const r of written) ctx.emitInstance(r.path!, 'de-identified');
    const refused = results.filter((r) => r.status === 'refused');
    for (const r of refused)
      ctx.log.warn(`left out ${r.originalSopInstanceUid}: it may have burned-in annotation (${r.reason})`, { file: r.source });
    ctx.emitTable(
      'deidentified',
      results.map((r) => ({
        originalSopInstanceUid: r.originalSopInstanceUid,
        status: r.status,
        sopInstanceUid: r.sopInstanceUid ?? null,
        reason: r.reason ?? null,
        removed: r.removed ?? 0,
        replaced: r.replaced ?? 0,
        scrubbed: r.scrubbed ?? 0,
      })),
      'De-identified objects (refused: may have burned-in annotation)',
    );
    ctx.log.info(
      `de-identified ${written.length} object(s) of ${recorded.length} patient(s)${refused.length ? `, left out ${refused.length}` : ''}`,
    );
  },
});
