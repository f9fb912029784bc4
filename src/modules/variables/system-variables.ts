/** The read-only system variables every run has (SPEC §1). */
export const SYSTEM_VARIABLES = [
  { name: '$run_id', type: 'text', description: 'The id of the current run.' },
  { name: '$workspace_id', type: 'text', description: 'The id of the workspace.' },
  { name: '$env', type: 'text', description: '"TEST" for Send request, "PRODUCTION" for runs.' },
  { name: '$date', type: 'datetime', description: 'The ISO time at which the run started.' },
] as const;

export type SystemVariableName = (typeof SYSTEM_VARIABLES)[number]['name'];
