/** What the numbers were measured on: the machine section of docs/PERFORMANCE.md. */
import os from 'node:os';
import { postgresVersion, sqliteVersion } from './databases.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  node: string;
  sqlite: string;
  postgres: string | null;
  date: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim().replace(/\s+/g, ' ') ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    sqlite: sqliteVersion(),
    postgres: await postgresVersion(),
    date: new Date().toISOString(),
  };
}

/** One line for a scenario heading: where and when its numbers come from. */
export function machineLine(m: MachineInfo): string {
  return `${m.date.slice(0, 10)} · ${m.cpuModel} × ${m.cores} · Node ${m.node}`;
}

/** The 1-minute load average: how busy the (possibly shared) machine was. */
export function loadAverage(): number {
  return os.loadavg()[0] ?? Number.NaN;
}

/** A sentence on the machine's load around a scenario, for its method. */
export function loadNote(cores: number, atStart: number, atEnd: number): string {
  // The benchmark itself keeps about two processes busy (bench and upstream, or PostgreSQL).
  const busy = Math.max(atStart, atEnd) > cores + 1.5;
  return `- Load average (1 min) ${atStart.toFixed(1)} at the start and ${atEnd.toFixed(1)} at the end of this scenario, on ${cores} cores; the benchmark's own processes account for about 2 of it${busy ? ', so other processes were competing for the CPU and absolute figures are lower and noisier than on a quiet machine' : ''}.`;
}
