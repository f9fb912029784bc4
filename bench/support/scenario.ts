/** The contract between bench/run.ts and a scenario module. */
import type { BenchDatabaseKind } from './databases.js';
import type { MachineInfo } from './machine.js';

export interface ScenarioOptions {
  /** Databases to run on (PostgreSQL already filtered out when unreachable). */
  databases: BenchDatabaseKind[];
  /** Measured requests per repetition of each operation. */
  requests: number;
  /** Whether --requests was given (throughput scenarios otherwise use their own, larger totals). */
  requestsGiven: boolean;
  /** Unmeasured requests before the repetitions of each operation. */
  warmup: number;
  /** Repetitions; the report shows the median of their statistics. */
  repetitions: number;
  /** Data sizes, when the scenario has them (e.g. secrets per workspace). */
  sizes: number[] | undefined;
  machine: MachineInfo;
}

export interface ScenarioResult {
  /** Markdown for the scenario's section of docs/PERFORMANCE.md (below its heading). */
  markdown: string;
  /** Gates (targets) checked by the scenario; the run fails when one fails. */
  gates: { name: string; passed: boolean; detail: string }[];
}

export interface Scenario {
  /** Stable id: the CLI argument and the section marker in PERFORMANCE.md. */
  id: string;
  title: string;
  /** Not part of the default suite (too long): runs only when named on the command line. */
  optIn?: boolean;
  run(options: ScenarioOptions): Promise<ScenarioResult>;
}
