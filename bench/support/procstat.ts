/**
 * CPU time and memory of processes from /proc (Linux), read from outside:
 * the servers under test are separate processes, so their CPU use and RSS
 * are measured without touching them. Elsewhere every reading is NaN.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of `pid` so far (NaN when it is gone or /proc is missing). */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at state (field 3).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of `pid` in MiB (VmRSS), NaN when unavailable. */
export function processRssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface RssDetail {
  /** VmRSS, MiB. */
  rss: number;
  /** RssAnon: the process's own memory (heap, native allocations), MiB. */
  anon: number;
  /** RssFile: mapped files (the node binary, native add-ons), MiB. */
  file: number;
}

/** VmRSS with its anonymous and file-backed parts (NaN when unavailable). */
export function rssDetail(pid: number): RssDetail {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024, file: kib('RssFile') / 1024 };
  } catch {
    return { rss: Number.NaN, anon: Number.NaN, file: Number.NaN };
  }
}

/** Pids of the processes whose command name (/proc/<pid>/comm) is `name`, e.g. postgres. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // Exited meanwhile.
    }
  }
  return pids;
}

/** Busy and total CPU seconds of the whole machine (all cores) so far, from /proc/stat. */
export function machineCpuSeconds(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** A named group of processes whose CPU time is measured together (e.g. every postgres process). */
export interface CpuGroup {
  label: string;
  pids(): number[];
}

export interface CpuSnapshot {
  at: number;
  groups: Map<string, Map<number, number>>;
  machine: { busy: number; total: number };
}

export function cpuSnapshot(groups: readonly CpuGroup[]): CpuSnapshot {
  const out = new Map<string, Map<number, number>>();
  for (const g of groups) {
    const m = new Map<number, number>();
    for (const pid of g.pids()) m.set(pid, processCpuSeconds(pid));
    out.set(g.label, m);
  }
  return { at: performance.now(), groups: out, machine: machineCpuSeconds() };
}

export interface CpuUse {
  /** Cores used on average by each group over the interval (CPU seconds ÷ wall seconds). */
  cores: Map<string, number>;
  /** Cores busy on the whole machine (every process, ours or not). */
  machineCores: number;
  /** Cores of the machine, as /proc/stat counted them over the interval. */
  machineCapacity: number;
  seconds: number;
}

/** CPU use between two snapshots; processes that started or ended in between count from what is known. */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const seconds = (b.at - a.at) / 1000;
  const cores = new Map<string, number>();
  for (const [label, after] of b.groups) {
    const before = a.groups.get(label) ?? new Map<number, number>();
    let sum = 0;
    for (const [pid, t1] of after) {
      const t0 = before.get(pid) ?? 0;
      if (Number.isFinite(t1) && Number.isFinite(t0)) sum += t1 - t0;
    }
    cores.set(label, sum / seconds);
  }
  const wall = b.machine.total - a.machine.total;
  return {
    cores,
    machineCores: (b.machine.busy - a.machine.busy) / seconds,
    machineCapacity: wall / seconds,
    seconds,
  };
}
