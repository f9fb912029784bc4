/**
 * One HTTP exchange as a run recorded it — the request sent, the response
 * received — shown the way a person reads it: the request line and headers,
 * the status, the headers on demand and the body (JSON pretty-printed).
 * Everything shown was redacted by the server before it was stored.
 */

export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
}

export interface RecordedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers one per line, as on the wire: `name: value`. */
export const headerLines = (headers: Record<string, string>) =>
  Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');

/**
 * The body as JSON, indented, when it parses; as received otherwise. Only the whitespace
 * between tokens changes: re-serialising the parsed value would show an id past 2^53, `1.10`
 * or an escape in a string otherwise than the body holds them.
 */
export function prettyBody(body: string): string {
  try {
    JSON.parse(body);
  } catch {
    return body;
  }
  let out = '';
  let depth = 0;
  const newline = () => `\n${'  '.repeat(depth)}`;
  for (let i = 0; i < body.length; i++) {
    const c = body.charAt(i);
    if (c === '"') {
      // A string as it is, escapes included.
      let end = i + 1;
      while (body.charAt(end) !== '"') end += body.charAt(end) === '\\' ? 2 : 1;
      out += body.slice(i, end + 1);
      i = end;
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      let next = i + 1;
      while (/\s/.test(body.charAt(next))) next++;
      if (body.charAt(next) === close) {
        out += c + close;
        i = next;
      } else {
        depth++;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out += newline() + c;
    } else if (c === ',') out += `,${newline()}`;
    else if (c === ':') out += ': ';
    else if (!/\s/.test(c)) out += c;
  }
  return out;
}

/** A value of a variable in words: text as it is, anything else as JSON. */
export function shownValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function RequestSent({ request }: { request: RecordedRequest }) {
  const head = `${request.method} ${request.url}`;
  const headers = headerLines(request.headers);
  return (
    <div className="exchange-part">
      <h4>Request sent</h4>
      <pre>{[head, headers, request.body ? `\n${prettyBody(request.body)}` : ''].filter(Boolean).join('\n')}</pre>
    </div>
  );
}

export function ResponseReceived({ response }: { response: RecordedResponse }) {
  return (
    <div className="exchange-part">
      <h4>Response: status {response.status}</h4>
      <details>
        <summary>Headers ({Object.keys(response.headers).length})</summary>
        <pre>{headerLines(response.headers)}</pre>
      </details>
      {response.body ? <pre className="body">{prettyBody(response.body)}</pre> : <p className="muted">No body.</p>}
    </div>
  );
}

/** Variables and their values (a Set Values step's assignments, a step's captures, a run's end state). */
export function VariableTable({ label, values }: { label: string; values: Record<string, unknown> }) {
  const entries = Object.entries(values);
  if (entries.length === 0) return <p className="muted">None.</p>;
  return (
    <table className="list" aria-label={label}>
      <thead>
        <tr>
          <th scope="col">Variable</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        {entries.map(([name, value]) => (
          <tr key={name}>
            <th scope="row">
              <code>{name}</code>
            </th>
            <td>
              <code>{shownValue(value)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
