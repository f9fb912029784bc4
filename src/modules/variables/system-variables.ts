/** The read-only system variables every run has (SPEC §1). */
export const SYSTEM_VARIABLES = [
  { name: '$run_id', type: 'text', description: 'The id of the current run.' },
  { name: '$workspace_id', type: 'text', description: 'The id of the workspace.' },
  { name: '$env', type: 'text', description: '"TEST" for Send request, "PRODUCTION" for runs.' },
  { name: '$date', type: 'datetime', description: 'The ISO time at which the run started.' },
] as const;

export type SystemVariableName = (typeof SYSTEM_VARIABLES)[number]['name'];

const BY_NAME = new Map<string, (typeof SYSTEM_VARIABLES)[number]>(SYSTEM_VARIABLES.map((v) => [v.name, v]));

/** The system variable named `name` exactly (the id the variables list gives it), if any. */
export function systemVariableNamed(name: string): (typeof SYSTEM_VARIABLES)[number] | undefined {
  return BY_NAME.get(name);
}
