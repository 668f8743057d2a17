import { definePlugin } from '../../core/plugin.ts';
import { compileCondition } from '../../core/trigger/conditions.ts';
import { conditionSchema, type Condition } from '../../core/pipeline/schema.ts';

// The condition language is recursive (any/not), which json-schema-to-ts cannot type; the
// options type is named here instead, from the same schema module.
const options = {
  type: 'object',
  additionalProperties: false,
  required: ['when'],
  definitions: { condition: conditionSchema },
  properties: { when: { $ref: '#/definitions/condition' } },
} as const;

/**
 * Keeps the instances that meet a condition (same language as trigger conditions) for the
 * following steps; if none does, the pipeline stops there, successfully.
 */
export default definePlugin<typeof options, { when: Condition }>({
  name: 'filter',
  version: '1.0.0',
  description: 'Continue only with the instances that meet a condition; stop the pipeline if none does.',
  runsIn: 'main',
  consumes: ['instances'],
  produces: ['instances'],
  options,
  check(options) {
    try {
      compileCondition(options.when);
      return [];
    } catch (err) {
      return [{ pointer: '/when', message: `invalid condition: ${(err as Error).message}` }];
    }
  },
  run(ctx, options) {
    const test = compileCondition(options.when);
    const kept = ctx.inputs.filter((i) =>
      test({
        attributes: i.attributes,
        sopClassUid: i.sopClassUid,
        callingAeTitle: i.callingAeTitle,
        calledAeTitle: i.calledAeTitle,
        source: i.source,
      }),
    );
    ctx.keepInputs(kept.map((i) => i.arrivalId));
    ctx.log.info(`${kept.length} of ${ctx.inputs.length} instance(s) meet the condition`);
    if (kept.length === 0) ctx.stopPipeline('no instance met the filter condition');
  },
});
