import { definePlugin } from '../../core/plugin.ts';
import { engineServices } from '../../core/jobs/services.ts';

/**
 * Files the job's instances into a database, keeping the original bytes (the database refers
 * to the received object; nothing is copied). Idempotent: an instance already filed from the
 * same object is left as it is.
 */
export default definePlugin({
  name: 'store',
  version: '1.0.0',
  description: 'File the instances into a named database (default: the database of the called AE title).',
  runsIn: 'main',
  consumes: ['instances'],
  produces: [],
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      database: { type: 'string', description: 'Database name; omitted: the one the called AE title maps to, else the default database.' },
      duplicatePolicy: { enum: ['keep-first', 'replace', 'reject'], description: 'Default: storage.duplicatePolicy of the configuration.' },
      objects: {
        enum: ['inputs', 'emitted', 'all'],
        default: 'inputs',
        description:
          'inputs: the instances the step works on; emitted: the DICOM objects earlier steps of the job created (e.g. a motion-corrected series), filed by default into the database of the job’s inputs; all: both.',
      },
    },
  },
  check(options, env) {
    if (options.database !== undefined && !env.databases.includes(options.database)) {
      return [{ pointer: '/database', message: `unknown database "${options.database}" (configured: ${env.databases.join(', ')})` }];
    }
    return [];
  },
  async run(ctx, options) {
    const services = engineServices(ctx.services);
    const policy = options.duplicatePolicy ?? services.duplicatePolicy;
    const counts: Record<string, number> = {};
    const release: string[] = [];
    const emittedArrivals = ctx.previousOutputs.flatMap((o) => (o.kind === 'instance' && o.arrivalId ? [o.arrivalId] : []));
    const emitted = options.objects === 'inputs' ? [] : await services.jobs.stepInputs(emittedArrivals);
    const instances = [...(options.objects === 'emitted' ? [] : ctx.inputs), ...emitted];
    const inputsDatabase = ctx.inputs.find((i) => i.database)?.database;
    const isEmitted = new Set(emittedArrivals);
    for (const [i, input] of instances.entries()) {
      const database = options.database ?? (isEmitted.has(input.arrivalId) ? inputsDatabase : input.database) ?? services.defaultDatabase;
      const result = await services.index.fileInstance(
        database,
        {
          objectId: input.objectId,
          sopClassUid: input.sopClassUid,
          sopInstanceUid: input.sopInstanceUid,
          attributes: input.attributes,
          // PMOD's rule: the network's creator is the calling AE title, an import's the user.
          createdBy: input.createdBy ?? input.userName ?? input.callingAeTitle ?? input.source,
          createdAt: input.receivedAt,
          source: input.source as never,
          arrivalId: input.arrivalId,
        },
        policy,
      );
      counts[result.outcome] = (counts[result.outcome] ?? 0) + 1;
      // Bytes the database did not take (a duplicate kept out, or the object a replacement
      // superseded) are released: deleted once no other job or database needs them.
      if (result.outcome === 'duplicate-kept-first' || result.outcome === 'duplicate-rejected') release.push(input.objectId);
      if (result.replacedObjectId) release.push(result.replacedObjectId);
      if (result.outcome.startsWith('duplicate')) ctx.log.info(`${result.outcome}: ${input.sopInstanceUid} in ${database}`);
      ctx.progress((i + 1) / instances.length);
    }
    if (release.length > 0) await services.lifecycle.releaseObjects(release, ctx.job.id);
    ctx.log.info('filed', counts);
  },
});
