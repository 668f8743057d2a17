import { definePlugin } from '../../core/plugin.ts';
import { engineServices } from '../../core/jobs/services.ts';

/**
 * Releases the received copies of the job's instances. The bytes are deleted once every
 * pipeline that matched them is done (no queued or running job, no open series/study group
 * needs them) and no database refers to them: a database that stored the object keeps it.
 */
export default definePlugin({
  name: 'delete-source',
  version: '1.0.0',
  description: 'Remove the received copy once every matching pipeline is done with it (database copies are kept).',
  runsIn: 'main',
  consumes: ['instances'],
  produces: [],
  options: { type: 'object', additionalProperties: false, properties: {} },
  async run(ctx) {
    const services = engineServices(ctx.services);
    await services.lifecycle.releaseObjects(
      ctx.inputs.map((i) => i.objectId),
      ctx.job.id,
    );
    ctx.log.info(`released ${ctx.inputs.length} received object(s)`);
  },
});
