/**
 * What receiving used to do by itself, as a pipeline: file every arrival into the database its
 * called AE title maps to (else the default database). It is in force unless the configuration
 * turns it off (`defaultPipeline: false`, e.g. convert-then-delete setups that keep no database
 * copy) or a pipeline file of the same name replaces it.
 */
export const DEFAULT_PIPELINE_NAME = 'store-received';
export const DEFAULT_PIPELINE_SOURCE = '(built-in default pipeline)';

export const defaultPipelineText = JSON.stringify(
  {
    name: DEFAULT_PIPELINE_NAME,
    description: 'File every received object into the database of its called AE title (else the default database), original bytes kept.',
    trigger: { on: 'instance' },
    steps: [{ plugin: 'store' }],
    retry: { maxAttempts: 5, backoffSeconds: 2 },
  },
  null,
  2,
);
