import type { FromSchema } from 'json-schema-to-ts';

/** A test of one string value (an attribute, an AE title, a SOP class, a source). */
const stringTest = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    equals: { type: 'string' },
    oneOf: { type: 'array', items: { type: 'string' }, minItems: 1 },
    matches: { type: 'string', description: 'ECMAScript regular expression, tested against the whole value.' },
    includes: { type: 'string', description: 'One of the backslash-separated values equals this (ImageType, ModalitiesInStudy).' },
    exists: { type: 'boolean' },
    range: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { min: { type: 'number' }, max: { type: 'number' } },
      description: 'Numeric range, inclusive; the value is read as a number (IS/DS).',
    },
    not: { type: 'boolean', description: 'Negates the whole test.' },
  },
} as const;

/**
 * Conditions on an arrival. Every field given must hold (AND); `any` holds if one of its
 * conditions does (OR); `not` negates. Data, not expressions: nothing is evaluated as code.
 */
export const conditionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    attributes: {
      type: 'object',
      description: 'DICOM keyword → test, on the arrival’s top-level attributes.',
      propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9]*$' },
      additionalProperties: stringTest,
    },
    sopClass: { ...stringTest, description: 'SOP Class: keywords such as SecondaryCaptureImageStorage or UIDs.' },
    callingAeTitle: stringTest,
    calledAeTitle: stringTest,
    source: stringTest,
    any: { type: 'array', minItems: 1, items: { $ref: '#/definitions/condition' } },
    not: { $ref: '#/definitions/condition' },
  },
} as const;

export const stepSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plugin'],
  properties: {
    id: {
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9-]*$',
      description: 'Names the step in logs and results; defaults to the plugin name.',
    },
    plugin: { type: 'string', description: 'A plugin name, optionally with a version: "store" or "store@1".' },
    options: { type: 'object', default: {} },
    timeoutSeconds: { type: 'number', exclusiveMinimum: 0, description: 'Default: the plugin’s own, else 600.' },
  },
} as const;

export const pipelineSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://dicomflow.dev/schemas/pipeline.schema.json',
  title: 'dicomflow pipeline',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'trigger', 'steps'],
  definitions: { condition: conditionSchema },
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
    description: { type: 'string' },
    enabled: { type: 'boolean', default: true },
    trigger: {
      type: 'object',
      additionalProperties: false,
      required: ['on'],
      properties: {
        on: {
          enum: ['instance', 'series', 'study'],
          description: 'instance: a job per arrival; series/study: one job once no object of it arrived for stableSeconds.',
        },
        stableSeconds: { type: 'number', minimum: 0, default: 30 },
        lateArrivals: {
          enum: ['whole', 'late-only', 'ignore'],
          default: 'whole',
          description:
            'Objects of a series/study arriving after its job fired: a new job over the whole series/study, over the late objects only, or none.',
        },
        includePipelineOutput: {
          type: 'boolean',
          default: false,
          description: 'Also fire on objects that pipelines created (off by default so a pipeline never feeds on its own output).',
        },
        includeDuplicates: { type: 'boolean', default: false, description: 'Also fire on duplicate arrivals whose bytes were not kept.' },
        when: { $ref: '#/definitions/condition' },
      },
    },
    steps: { type: 'array', minItems: 1, items: stepSchema },
    retry: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxAttempts: { type: 'integer', minimum: 1, maximum: 100, default: 3 },
        backoffSeconds: { type: 'number', minimum: 0, default: 10, description: 'Doubles with each attempt.' },
      },
    },
    priority: { type: 'integer', default: 0, description: 'Higher runs first among queued jobs.' },
    maxConcurrentJobs: {
      type: 'integer',
      minimum: 1,
      description:
        'At most this many jobs of the pipeline run at once on a server (default: no limit but engine.concurrency). Keeps a pipeline whose jobs wait on one resource (a DICOMDIR file-set, a slow destination) from holding every job slot.',
    },
  },
} as const;

export type StringTest = FromSchema<typeof stringTest>;
export interface Condition {
  attributes?: Record<string, StringTest>;
  sopClass?: StringTest;
  callingAeTitle?: StringTest;
  calledAeTitle?: StringTest;
  source?: StringTest;
  any?: Condition[];
  not?: Condition;
}
export type StepDefinition = FromSchema<typeof stepSchema, { keepDefaultedPropertiesOptional: false }>;

export interface PipelineDefinition {
  $schema?: string;
  name: string;
  description?: string;
  enabled: boolean;
  trigger: {
    on: 'instance' | 'series' | 'study';
    stableSeconds: number;
    lateArrivals: 'whole' | 'late-only' | 'ignore';
    includePipelineOutput: boolean;
    includeDuplicates: boolean;
    when?: Condition;
  };
  steps: StepDefinition[];
  retry: { maxAttempts: number; backoffSeconds: number };
  priority: number;
  maxConcurrentJobs?: number;
}
