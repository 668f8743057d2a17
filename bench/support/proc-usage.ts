// Where the machine's time went between two moments, from Linux's /proc: CPU utilisation of the
// whole machine and of each core (/proc/stat), CPU seconds of process trees (/proc/<pid>/stat) and
// bytes written to the disks (/proc/diskstats). Snapshots are cheap (one pass over /proc), so a
// bench takes one at the start and one at the end of a phase and compares them.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

interface CpuTimes {
  /** Ticks doing anything but idling or waiting for I/O. */
  busy: number;
  iowait: number;
  total: number;
}

interface ProcessTimes {
  ppid: number;
  comm: string;
  /**
   * utime + stime + cutime + cstime: its own CPU and that of its children it has reaped. Summed
   * over the live processes of a tree this only grows: a child that exits hands its figures to
   * its parent.
   */
  ticks: number;
}

export interface ProcSnapshot {
  atMs: number;
  machine: CpuTimes;
  cores: CpuTimes[];
  processes: Map<number, ProcessTimes>;
  diskWrittenBytes: number;
  /** CPU ticks of this process itself (the bench: its polling and bookkeeping). */
  selfTicks: number;
  /** CPU ticks of this process's children that have exited and been reaped (short-lived senders). */
  reapedChildrenTicks: number;
}

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function cpuTimes(fields: number[]): CpuTimes {
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
  const total = user + nice + system + idle + iowait + irq + softirq + (steal ?? 0);
  return { busy: total - idle - iowait, iowait, total };
}

function readStat(): { machine: CpuTimes; cores: CpuTimes[] } {
  const lines = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  let machine: CpuTimes = { busy: 0, iowait: 0, total: 0 };
  const cores: CpuTimes[] = [];
  for (const line of lines) {
    const match = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const times = cpuTimes(match[2].trim().split(/\s+/).map(Number));
    if (match[1] === '') machine = times;
    else cores[Number(match[1])] = times;
  }
  return { machine, cores };
}

function readProcesses(): Map<number, ProcessTimes> {
  const processes = new Map<number, ProcessTimes>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    processes.set(Number(name), { ppid: Number(fields[1]), comm, ticks });
  }
  return processes;
}

/** Sectors written to the machine's disks (not loop devices, RAM disks or zram swap), in bytes. */
function readDiskWrittenBytes(): number {
  let disks: Set<string>;
  try {
    disks = new Set(fs.readdirSync('/sys/block').filter((d) => !/^(loop|ram|zram)/.test(d)));
  } catch {
    return Number.NaN;
  }
  let sectors = 0;
  for (const line of fs.readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/);
    // major minor name reads … ; field 10 (index 9) is sectors written, always 512-byte units.
    if (fields.length > 9 && disks.has(fields[2])) sectors += Number(fields[9]);
  }
  return sectors * 512;
}

function readSelfTicks(): { selfTicks: number; reapedChildrenTicks: number } {
  const text = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { selfTicks: Number(fields[11]) + Number(fields[12]), reapedChildrenTicks: Number(fields[13]) + Number(fields[14]) };
}

export function snapshot(): ProcSnapshot {
  const { machine, cores } = readStat();
  return {
    atMs: performance.now(),
    machine,
    cores,
    processes: readProcesses(),
    diskWrittenBytes: readDiskWrittenBytes(),
    ...readSelfTicks(),
  };
}

/** The command line of a process, arguments joined by spaces ('' once it is gone). */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Processes whose command name is `comm` and whose command line matches `pattern`. */
export function findProcesses(comm: string, pattern: RegExp): number[] {
  const found: number[] = [];
  for (const [pid, p] of readProcesses()) if (p.comm === comm && pattern.test(commandLine(pid))) found.push(pid);
  return found;
}

/** A PostgreSQL cluster's postmaster (its backends descend from it), found by the port on its command line. */
export function postmasterPids(port: number): number[] {
  return findProcesses('postgres', new RegExp(`-p ${port}(\\s|$)`));
}

/** CPU ticks of the live processes that are one of `roots` or descend from one. */
function treeTicks(snap: ProcSnapshot, roots: readonly number[]): number {
  const inTree = new Map<number, boolean>();
  const rootSet = new Set(roots);
  const belongs = (pid: number): boolean => {
    const known = inTree.get(pid);
    if (known !== undefined) return known;
    const p = snap.processes.get(pid);
    const result = rootSet.has(pid) || (p !== undefined && p.ppid > 1 && p.ppid !== pid && belongs(p.ppid));
    inTree.set(pid, result);
    return result;
  };
  let ticks = 0;
  for (const [pid, p] of snap.processes) if (belongs(pid)) ticks += p.ticks;
  return ticks;
}

export interface Usage {
  seconds: number;
  /** Machine CPU utilisation (all cores), 0–100. */
  busyPercent: number;
  /** Share of the machine's time the cores sat idle waiting for I/O, 0–100. */
  iowaitPercent: number;
  corePercents: number[];
  /** CPU seconds of each named group of process trees. */
  cpuSeconds: Record<string, number>;
  /** CPU seconds of this process's children that exited in between (e.g. storescu senders). */
  exitedChildrenCpuSeconds: number;
  /** CPU seconds of this process itself. */
  selfCpuSeconds: number;
  diskWrittenBytes: number;
}

/** What happened between two snapshots; `groups` names the process trees to account for. */
export function usageBetween(before: ProcSnapshot, after: ProcSnapshot, groups: Record<string, readonly number[]>): Usage {
  const percent = (a: CpuTimes, b: CpuTimes, field: 'busy' | 'iowait') =>
    b.total > a.total ? (100 * (b[field] - a[field])) / (b.total - a.total) : 0;
  const cpuSeconds: Record<string, number> = {};
  for (const [name, roots] of Object.entries(groups))
    cpuSeconds[name] = Math.max(0, treeTicks(after, roots) - treeTicks(before, roots)) / TICKS_PER_SECOND;
  return {
    seconds: (after.atMs - before.atMs) / 1000,
    busyPercent: percent(before.machine, after.machine, 'busy'),
    iowaitPercent: percent(before.machine, after.machine, 'iowait'),
    corePercents: after.cores.map((core, i) => percent(before.cores[i], core, 'busy')),
    cpuSeconds,
    exitedChildrenCpuSeconds: (after.reapedChildrenTicks - before.reapedChildrenTicks) / TICKS_PER_SECOND,
    selfCpuSeconds: (after.selfTicks - before.selfTicks) / TICKS_PER_SECOND,
    diskWrittenBytes: after.diskWrittenBytes - before.diskWrittenBytes,
  };
}
