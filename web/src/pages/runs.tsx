/** Runs: pick a workflow, run it, list its runs and read a run's redacted steps. */
import { useCallback, useEffect, useState } from 'react';
import { get, type Page, post, type Run, type WorkflowSummary } from '../api';
import { useWorkspace } from '../app-state';
import { RequestSent, ResponseReceived, VariableTable } from '../components/exchange';
import { ErrorText } from '../components/ui';

/** A run in the list: its steps are read when it is opened. */
interface RunSummary {
  id: string;
  status: string;
  startedAt: string;
  stepCount: number;
}

/** A step of a run, as the API's run schema has it (api.ts). */
type Step = Run['steps'][number];

/** One step of a run: what went wrong in words, the exchange, what it set. */
function StepView({ step }: { step: Step }) {
  return (
    <div className="step stack">
      {step.error && (
        <p className="error">
          {step.error.message} <span className="muted">({step.error.code})</span>
        </p>
      )}
      {step.request && <RequestSent request={step.request} />}
      {step.response && <ResponseReceived response={step.response} />}
      {step.type === 'api' && step.request && !step.response && !step.error && <p className="muted">No response.</p>}
      {Object.keys(step.captures).length > 0 && (
        <div className="exchange-part">
          <h4>{step.type === 'set' ? 'Values set' : 'Captured'}</h4>
          <VariableTable label={step.type === 'set' ? 'Values set' : 'Captured'} values={step.captures} />
        </div>
      )}
    </div>
  );
}

export function RunsPage() {
  const ws = useWorkspace();
  const [workflows, setWorkflows] = useState<WorkflowSummary[]>([]);
  const [workflowId, setWorkflowId] = useState('');
  const [runs, setRuns] = useState<RunSummary[]>([]);
  const [open, setOpen] = useState<Run | null>(null);
  const [error, setError] = useState<unknown>(null);
  /** The names of the chosen workflow's blocks, for the steps of its runs (a removed block shows its id). */
  const [blockNames, setBlockNames] = useState<{ workflowId: string; names: Map<string, string> } | null>(null);
  useEffect(() => {
    if (!workflowId) return;
    let current = true;
    get<{ blocks: { id: string; name: string }[] }>(`/workspaces/${ws.id}/workflows/${workflowId}`).then(
      (w) =>
        current &&
        setBlockNames({ workflowId, names: new Map(w.blocks.filter((b) => b.name).map((b) => [b.id, b.name])) }),
      () => undefined, // the ids stay
    );
    return () => {
      current = false;
    };
  }, [ws.id, workflowId]);
  useEffect(() => {
    // Summaries: the picker needs names only, never a workflow's blocks.
    void get<Page<WorkflowSummary>>(`/workspaces/${ws.id}/workflows?limit=200`).then((r) => {
      setWorkflows(r.items);
      setWorkflowId((id) => id || r.items[0]?.id || '');
    }, setError);
  }, [ws.id]);
  const load = useCallback(async () => {
    if (workflowId)
      setRuns((await get<Page<RunSummary>>(`/workspaces/${ws.id}/workflows/${workflowId}/runs?limit=50`)).items);
  }, [ws.id, workflowId]);
  useEffect(() => {
    void load().catch(setError);
  }, [load]);
  return (
    <section>
      <header className="page-head">
        <h1>Runs</h1>
      </header>
      <div className="toolbar">
        <label>
          Workflow{' '}
          <select value={workflowId} onChange={(e) => setWorkflowId(e.target.value)}>
            {workflows.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </label>
        {ws.can('workflows.run') && workflowId && (
          <button
            type="button"
            onClick={async () => {
              try {
                setOpen(await post<Run>(`/workspaces/${ws.id}/workflows/${workflowId}/runs`, { variables: {} }));
                await load();
              } catch (err) {
                setError(err);
              }
            }}
          >
            Run now
          </button>
        )}
      </div>
      <ErrorText error={error} />
      <table className="list">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Status</th>
            <th scope="col">Started</th>
            <th scope="col">Steps</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id}>
              <td>
                <button
                  type="button"
                  className="ghost"
                  onClick={async () => {
                    try {
                      setOpen(await get<Run>(`/workspaces/${ws.id}/runs/${r.id}`));
                    } catch (err) {
                      setError(err);
                    }
                  }}
                >
                  {r.id}
                </button>
              </td>
              <td>
                <span className={`badge ${r.status}`}>{r.status}</span>
              </td>
              <td>{new Date(r.startedAt).toLocaleString()}</td>
              <td>{r.stepCount}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && (
        <section aria-label="Run detail" className="stack">
          <h2>Run {open.id}</h2>
          {open.steps.map((s, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: steps are positional
            <details key={i} open={s.status === 'failed'}>
              <summary>
                {i + 1}. {(blockNames?.workflowId === open.workflowId && blockNames.names.get(s.blockId)) || s.blockId}{' '}
                — {s.status} ({s.durationMs} ms){s.error ? ` — ${s.error.code}` : ''}
              </summary>
              <StepView step={s} />
            </details>
          ))}
          <h3>Variables at the end</h3>
          <VariableTable label="Variables at the end" values={open.variables} />
        </section>
      )}
    </section>
  );
}
