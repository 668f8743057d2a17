import { createHash } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import dcmjs from 'dcmjs';
import { findNodeAtLocation, getNodeValue, parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import { sopClassUidFromNameOrUid } from '../dicom/sop-classes.ts';
import type { PluginRegistry, RegisteredPlugin } from '../plugin-registry.ts';
import { compileCondition, type CompiledCondition } from '../trigger/conditions.ts';
import { pipelineSchema, type Condition, type PipelineDefinition, type StringTest } from './schema.ts';

export interface PipelineProblem {
  file: string;
  /** JSON pointer (RFC 6901) into the file. */
  pointer: string;
  line: number;
  column: number;
  message: string;
}

export interface ResolvedStep {
  id: string;
  index: number;
  pluginRef: string;
  registered: RegisteredPlugin;
  options: Record<string, unknown>;
  timeoutSeconds: number;
}

export interface LoadedPipeline {
  file: string;
  definition: PipelineDefinition;
  when: CompiledCondition;
  steps: ResolvedStep[];
  /** Identifies this exact definition in job records: the content hash of definitionJson. */
  hash: string;
  /** The validated definition (defaults filled in) as JSON: what a job of this version runs. */
  definitionJson: string;
}

/** What semantic checks may look up: the configuration's names. */
export interface PipelineEnvironment {
  databases: string[];
  /** AE titles of remoteNodes (routing destinations); absent, destinations are not checked. */
  remoteNodes?: string[];
  /** Names of the configured printers; absent, no printer is known. */
  printers?: string[];
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
// The largest pipelines in use are a few kilobytes and a handful of levels deep.
const MAX_PIPELINE_BYTES = 1 << 20;
const MAX_PIPELINE_DEPTH = 64;
const MAX_PROBLEMS = 50;
const validatePipeline = ajv.compile(pipelineSchema);
const dictionary = dcmjs.data.DicomMetaDictionary;

export function formatProblem(p: PipelineProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.pointer || '/'}: ${p.message}`;
}

/**
 * Loads one pipeline in two passes (as MONAI Deploy's WorkflowValidator does): the JSON Schema,
 * then semantics (plugins exist, step options match each plugin's own schema, attribute
 * keywords and SOP classes exist, regexes compile). Every problem is reported, each with its
 * JSON pointer and the line it is on.
 */
export function loadPipeline(
  text: string,
  file: string,
  plugins: PluginRegistry,
  env: PipelineEnvironment,
): { pipeline?: LoadedPipeline; problems: PipelineProblem[]; warnings: PipelineProblem[] } {
  const problems: PipelineProblem[] = [];
  const warnings: PipelineProblem[] = [];
  // A hostile or broken file must cost little: jsonc-parser recurses per nesting level (a deep
  // file overflows the stack), and each problem's line is found by a scan of the text.
  if (text.length > MAX_PIPELINE_BYTES) {
    problems.push({
      file,
      pointer: '',
      line: 1,
      column: 1,
      message: `the file has ${text.length} characters, more than the ${MAX_PIPELINE_BYTES} a pipeline may have`,
    });
    return { problems, warnings };
  }
  const tooDeep = nestingBeyond(text, MAX_PIPELINE_DEPTH);
  if (tooDeep) {
    problems.push({
      file,
      pointer: tooDeep.pointer,
      ...lineOf(text, tooDeep.offset),
      message: `nested more than ${MAX_PIPELINE_DEPTH} levels deep`,
    });
    return { problems, warnings };
  }
  const syntaxErrors: ParseError[] = [];
  const tree = parseTree(text, syntaxErrors, { disallowComments: true, allowTrailingComma: false });
  const at = (pointer: string, message: string, offset?: number) =>
    problems.push({ file, pointer, message, ...lineOf(text, offset ?? offsetOf(tree, pointer)) });
  const warn = (pointer: string, message: string) => warnings.push({ file, pointer, message, ...lineOf(text, offsetOf(tree, pointer)) });
  if (syntaxErrors.length > 0 || !tree) {
    for (const e of syntaxErrors) at('', `JSON syntax: ${printParseErrorCode(e.error)}`, e.offset);
    if (!tree) at('', 'the file is empty');
    return { problems, warnings };
  }
  const raw = getNodeValue(tree);
  if (!validatePipeline(raw)) {
    const errors = validatePipeline.errors ?? [];
    if (errors.length > MAX_PROBLEMS) at('', `${errors.length} problems; the first ${MAX_PROBLEMS} follow`);
    for (const e of errors.slice(0, MAX_PROBLEMS)) {
      const pointer = errorPointer(e);
      at(pointer, describe(e));
    }
    return { problems, warnings };
  }
  const definition = raw as PipelineDefinition;

  checkCondition(definition.trigger.when, '/trigger/when', at);
  const steps: ResolvedStep[] = [];
  const ids = new Set<string>();
  definition.steps.forEach((step, index) => {
    const base = `/steps/${index}`;
    const id = step.id ?? step.plugin.split('@')[0];
    if (ids.has(id)) at(`${base}${step.id ? '/id' : '/plugin'}`, `step id "${id}" is used twice; give the steps distinct "id"s`);
    ids.add(id);
    const registered = plugins.resolve(step.plugin);
    if (!registered) {
      at(`${base}/plugin`, `unknown plugin "${step.plugin}" (known: ${plugins.names().join(', ')})`);
      return;
    }
    const options = structuredClone(step.options ?? {});
    if (!registered.validateOptions(options)) {
      for (const e of registered.validateOptions.errors ?? []) at(`${base}/options${errorPointer(e)}`, describe(e));
      return;
    }
    // What check() finds depends on the server's configuration (databases, printers, remote
    // nodes): in a disabled pipeline, an example waiting to be configured, it is a warning.
    const report = definition.enabled ? at : warn;
    for (const p of registered.plugin.check?.(options, env) ?? []) report(`${base}/options${p.pointer}`, p.message);
    steps.push({
      id,
      index,
      pluginRef: step.plugin,
      registered,
      options,
      timeoutSeconds: step.timeoutSeconds ?? registered.plugin.defaultTimeoutSeconds ?? 600,
    });
  });
  checkChain(steps, at);
  if (problems.length > 0) return { problems, warnings };
  const definitionJson = JSON.stringify(definition);
  const hash = createHash('sha256').update(definitionJson).digest('hex').slice(0, 16);
  return {
    pipeline: { file, definition, when: compileCondition(definition.trigger.when), steps, hash, definitionJson },
    problems,
    warnings,
  };
}

type At = (pointer: string, message: string) => void;

/**
 * What each step consumes must be there before it runs: the job's instances from the start,
 * files and tables once an earlier step produces them (MONAI Deploy checks its operators' ports
 * the same way), so a pipeline that cannot work is refused when it loads, not when a job fails.
 */
function checkChain(steps: ResolvedStep[], at: At): void {
  const available = new Set<string>(['instances']);
  for (const step of steps) {
    const { consumes, produces } = step.registered.plugin;
    const missing = consumes.filter((kind) => !available.has(kind));
    if (missing.length > 0) {
      at(`/steps/${step.index}/plugin`, `${step.registered.plugin.name} consumes ${missing.join(' and ')}, which no earlier step produces`);
    }
    produces.forEach((kind) => available.add(kind));
  }
}

function checkCondition(condition: Condition | undefined, pointer: string, at: At): void {
  if (!condition) return;
  for (const [keyword, test] of Object.entries(condition.attributes ?? {})) {
    if (!dictionary.nameMap[keyword]) at(`${pointer}/attributes/${keyword}`, `"${keyword}" is not a DICOM attribute keyword`);
    checkTest(test, `${pointer}/attributes/${keyword}`, at);
  }
  if (condition.sopClass) {
    checkTest(condition.sopClass, `${pointer}/sopClass`, at);
    const values = [condition.sopClass.equals, condition.sopClass.includes, ...(condition.sopClass.oneOf ?? [])];
    values.forEach((v) => {
      if (v !== undefined && !sopClassUidFromNameOrUid(v)) at(`${pointer}/sopClass`, `"${v}" is neither a SOP Class keyword nor a UID`);
    });
  }
  for (const key of ['callingAeTitle', 'calledAeTitle'] as const) {
    const test = condition[key];
    if (!test) continue;
    checkTest(test, `${pointer}/${key}`, at);
    for (const v of [test.equals, ...(test.oneOf ?? [])]) {
      if (v !== undefined && v.length > 16) at(`${pointer}/${key}`, `AE title "${v}" is longer than 16 characters`);
    }
  }
  if (condition.source) checkTest(condition.source, `${pointer}/source`, at);
  condition.any?.forEach((c, i) => checkCondition(c, `${pointer}/any/${i}`, at));
  checkCondition(condition.not, `${pointer}/not`, at);
}

function checkTest(test: StringTest, pointer: string, at: At): void {
  if (test.matches === undefined) return;
  try {
    new RegExp(test.matches, 'u');
  } catch (err) {
    at(`${pointer}/matches`, `invalid regular expression: ${(err as Error).message}`);
  }
}

function errorPointer(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties') return `${e.instancePath}/${escapePointer(String(e.params.additionalProperty))}`;
  return e.instancePath;
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown property "${String(e.params.additionalProperty)}"`;
    case 'enum':
      return `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'required':
      return `missing required property "${String(e.params.missingProperty)}"`;
    default:
      return e.message ?? e.keyword;
  }
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

/** The text offset of a JSON pointer: the property's key when there is one, else the value. */
function offsetOf(tree: Node | undefined, pointer: string): number {
  if (!tree) return 0;
  const segments = pointer === '' ? [] : pointer.slice(1).split('/').map(unescapePointer);
  for (let n = segments.length; n >= 0; n--) {
    const path = segments.slice(0, n).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const node = findNodeAtLocation(tree, path);
    if (node) return node.parent?.type === 'property' ? node.parent.offset : node.offset;
    // A property that does not exist as a value (unknown key with a value) still has a key node.
  }
  return 0;
}

/**
 * Where the JSON text nests deeper than `max` objects and arrays, as a JSON pointer to the
 * container that goes one level too far (a scan of the text: no recursion, no parse tree).
 */
export function nestingBeyond(text: string, max: number): { pointer: string; offset: number } | undefined {
  const path: (string | number)[] = [];
  let key: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      key = text.slice(start + 1, i);
    } else if (c === '{' || c === '[') {
      const top = path.length === 0 ? undefined : path[path.length - 1];
      if (path.length > 0) path[path.length - 1] = typeof top === 'number' ? top : (key ?? '');
      if (path.length >= max)
        return { pointer: `/${path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`, offset: i };
      path.push(c === '[' ? 0 : '');
    } else if (c === '}' || c === ']') {
      path.pop();
    } else if (c === ',' && typeof path[path.length - 1] === 'number') {
      path[path.length - 1] = (path[path.length - 1] as number) + 1;
    }
  }
  return undefined;
}

function lineOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
