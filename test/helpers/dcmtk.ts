import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { recordMissing } from './skip-reasons.ts';

export interface ToolResult {
  /** Exit code; null when the process was killed (timeout or signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Runs one DCMTK program without a shell. Never rejects on a non-zero exit or a timeout: the
 * caller asserts on `code`. Rejects only when the program cannot be started at all.
 * TCP_NODELAY=1: Debian's DCMTK leaves Nagle's algorithm on, which adds ~40 ms per PDU exchange.
 */
export function runDcmtk(tool: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      [...args],
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env, TCP_NODELAY: '1' },
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, signal: null, timedOut: false, stdout, stderr });
          return;
        }
        const err = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null };
        if (typeof err.code === 'string') {
          // Spawn failure (ENOENT, EACCES…): a broken test machine, not a tool result.
          reject(new Error(`cannot run ${tool}: ${err.code}; is DCMTK installed (apt-get install dcmtk)?`, { cause: error }));
          return;
        }
        const signal = err.signal ?? null;
        resolve({
          code: typeof err.code === 'number' ? err.code : null,
          signal,
          timedOut: err.killed === true && signal === 'SIGKILL',
          stdout,
          stderr,
        });
      },
    );
  });
}

export const storescu = (args: readonly string[], options?: ToolOptions): Promise<ToolResult> => runDcmtk('storescu', args, options);
export const findscu = (args: readonly string[], options?: ToolOptions): Promise<ToolResult> => runDcmtk('findscu', args, options);
export const echoscu = (args: readonly string[], options?: ToolOptions): Promise<ToolResult> => runDcmtk('echoscu', args, options);
export const dcmdump = (args: readonly string[], options?: ToolOptions): Promise<ToolResult> => runDcmtk('dcmdump', args, options);

/** The message for the first of these DCMTK tools missing from PATH (benches refuse to start without it). */
export function missingDcmtkTool(names: readonly string[]): string | undefined {
  const missing = names.find((name) => !hasTool(name));
  return missing === undefined ? undefined : `${missing} is not on PATH: install DCMTK (apt-get install dcmtk)`;
}

/**
 * True when an executable of that name is on PATH (synchronous, for `describe.skipIf`). A tool
 * found missing is named at the end of the run as a reason for skips, unless only probed.
 */
export function hasTool(name: string, options: { probeOnly?: boolean } = {}): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  if (!options.probeOnly) recordMissing(`${name} is not on PATH`);
  return false;
}

/** A value as dcmdump prints it: the text between the brackets, or a list of items for a sequence. */
export type DumpValue = string | DumpDataset[];
export interface DumpDataset {
  [keywordOrTag: string]: DumpValue;
}

// "(0010,0010) PN [Doe^John]     #   8, 1 PatientName"; the value part may itself contain '#'.
const ELEMENT_LINE = /^( *)\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) (\S\S) (.*?)\s+#\s*(?:\d+|u\/l),\s*\d+\s+(.*)$/;

/**
 * Parses dcmdump-style text (dcmdump's stdout, or the data sets findscu logs) into data sets.
 * Keys are keywords; private and unknown elements are keyed by their tag, 'GGGGEEEE'.
 * Each "# Dicom-Data-Set" header starts a new data set.
 */
export function parseDump(text: string): DumpDataset[] {
  const datasets: DumpDataset[] = [];
  // Stack of open containers: index 0 is the data set, then sequence items by depth.
  let stack: Array<{ depth: number; dataset: DumpDataset; lastSequence?: DumpDataset[] }> = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/^[FEWIDT]: /, '');
    if (line.startsWith('# Dicom-Data-Set')) {
      const dataset: DumpDataset = {};
      datasets.push(dataset);
      stack = [{ depth: 0, dataset }];
      continue;
    }
    if (stack.length === 0) continue;
    const m = ELEMENT_LINE.exec(line);
    if (m === null) {
      // A line that is neither an element nor an indented comment closes the data set.
      if (line.trim() !== '' && !line.trimStart().startsWith('#')) stack = [];
      continue;
    }
    const [, indent, group, element, vr, valueText, name] = m;
    const depth = indent.length / 2;
    const tag = `${group}${element}`.toUpperCase();
    if (tag === 'FFFEE000') {
      // Item start: a new dataset inside the sequence opened at depth - 1.
      while (stack.length > 1 && stack[stack.length - 1].depth >= depth) stack.pop();
      const parent = stack[stack.length - 1];
      const item: DumpDataset = {};
      parent.lastSequence?.push(item);
      stack.push({ depth: depth + 1, dataset: item });
      continue;
    }
    if (tag === 'FFFEE00D' || tag === 'FFFEE0DD') continue;
    while (stack.length > 1 && stack[stack.length - 1].depth > depth) stack.pop();
    const top = stack[stack.length - 1];
    const privateOrUnknown = (parseInt(group, 16) & 1) === 1 || name.includes('Unknown Tag');
    const key = privateOrUnknown ? tag : name.trim();
    if (vr === 'SQ') {
      const items: DumpDataset[] = [];
      top.dataset[key] = items;
      top.lastSequence = items;
      continue;
    }
    top.dataset[key] = parseDumpValue(valueText);
  }
  return datasets;
}

function parseDumpValue(valueText: string): string {
  const text = valueText.trim();
  if (text === '(no value available)') return '';
  // Values are padded to even length (a space, or NUL for UIDs); the padding is not part of the value.
  if (text.startsWith('[') && text.endsWith(']')) return text.slice(1, -1).replace(/[\0 ]+$/, '');
  // "=CTImageStorage" is dcmdump naming a well-known UID: keep the name.
  return text;
}

/**
 * The C-FIND responses in findscu's log output. findscu logs every response unless it extracts
 * them to files (-X; +sr forces the log); DCMTK 3.6.7 writes its log to stderr, so pass stderr
 * (or both streams joined). The request identifiers, which `-v` also logs as a data set, are
 * skipped: only data sets after "Find Response:" count.
 */
export function parseFindscuResponses(logText: string): DumpDataset[] {
  const responses: DumpDataset[] = [];
  const blocks = logText.split(/^(?:[FEWIDT]: )?Find Response: /m).slice(1);
  for (const block of blocks) {
    // A pending response's identifier ends at the next separator line or final status line.
    const end = block.search(/^(?:[FEWIDT]: )?(?:-{5,}|Received Final Find Response)/m);
    const [dataset] = parseDump(end === -1 ? block : block.slice(0, end));
    if (dataset !== undefined) responses.push(dataset);
  }
  return responses;
}

/**
 * The data set of a file as DCMTK reads it (`dcmdump -Un`: UIDs as numbers). Rejects when
 * dcmdump reports an error, with its message.
 */
export async function dumpDataset(file: string, extraArgs: readonly string[] = []): Promise<DumpDataset> {
  const result = await dcmdump(['-Un', ...extraArgs, file]);
  if (result.code !== 0) throw new Error(`dcmdump ${file} exited with ${result.code ?? result.signal}: ${result.stderr.trim()}`);
  const [dataset] = parseDump(result.stdout);
  if (dataset === undefined) throw new Error(`dcmdump ${file} printed no data set`);
  return dataset;
}
