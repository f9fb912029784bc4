/**
 * Hush set up for the load and memory scenarios, over HTTP against a
 * `hush serve` process: an owner with a token, 100 secrets for list and
 * reveal, a secret used by Send and runs, and a three-block workflow; and
 * the load-generator jobs of each operation, with the checks every answer
 * must pass (right value, redacted echo, the secret's value nowhere).
 */
import type { BenchDatabaseKind } from './databases.js';
import { call, expectStatus, type HushProcess, type HushSite, type SiteOwner, setupOwnerHttp } from './hush-process.js';
import type { HttpJob } from './loadgen.js';
import { secretName, secretValue } from './seed.js';
import { seededRandom } from './stats.js';
import type { BenchUpstream } from './upstream.js';

export type OpKey = 'reveal' | 'list' | 'send' | 'run';
export const LIST_SECRETS = 100;
export const SECRET_NAME = 'tok';

export interface Site {
  kind: BenchDatabaseKind;
  site: HushSite;
  owner: SiteOwner;
  workflowId: string;
  secretIds: string[];
  /** Bytes of one answer per operation (for the report). */
  answerBytes: Partial<Record<OpKey, number>>;
}

/** Setup over HTTP: owner, token, 100 secrets for list/reveal, the secret `tok` and a three-block workflow. */
export async function prepareSite(
  kind: BenchDatabaseKind,
  server: HushProcess,
  site: HushSite,
  upstream: BenchUpstream,
  value: string,
) {
  const owner = await setupOwnerHttp(server.origin);
  const ws = `/api/v1/workspaces/${owner.workspaceId}`;
  const secretIds: string[] = [];
  for (let i = 0; i < LIST_SECRETS; i++) {
    const r = expectStatus(
      'secret',
      await call(server.origin, 'POST', `${ws}/secrets`, {
        bearer: owner.bearer,
        body: { name: secretName(i), visibility: 'masked', value: secretValue(i) },
      }),
      201,
    );
    secretIds.push(r.json.id as string);
  }
  expectStatus(
    'secret tok',
    await call(server.origin, 'POST', `${ws}/secrets`, {
      bearer: owner.bearer,
      body: { name: SECRET_NAME, visibility: 'masked', value, allowedHosts: ['127.0.0.1'] },
    }),
    201,
  );
  const auth = [{ key: 'Authorization', value: `Bearer {{secret:${SECRET_NAME}}}` }];
  const wf = expectStatus(
    'workflow',
    await call(server.origin, 'POST', `${ws}/workflows`, {
      bearer: owner.bearer,
      body: {
        name: 'bench three blocks',
        startBlockId: 'first',
        blocks: [
          {
            id: 'first',
            type: 'api',
            method: 'GET',
            url: upstream.url,
            headers: auth,
            capture: [{ variable: 'served', path: '$.request' }],
            onSuccess: 'note',
          },
          {
            id: 'note',
            type: 'set',
            assignments: [{ variable: 'note', value: 'after {{served}}' }],
            onSuccess: 'second',
          },
          {
            id: 'second',
            type: 'api',
            method: 'GET',
            url: upstream.url,
            headers: [...auth, { key: 'X-Note', value: '{{note}}' }],
          },
        ],
      },
    }),
    201,
  );
  return { kind, site, owner, workflowId: wf.json.id as string, secretIds, answerBytes: {} } satisfies Site;
}

export function hushJob(
  op: OpKey,
  site: Site,
  origins: string[],
  value: string,
  payload: string,
  run: { seconds?: number; amount?: number; connections: number },
): HttpJob {
  const ws = `/api/v1/workspaces/${site.owner.workspaceId}`;
  const headers = { authorization: `Bearer ${site.owner.bearer}` };
  const base = { kind: 'http' as const, label: `${op}`, origins, ...run };
  switch (op) {
    case 'reveal': {
      const random = seededRandom(7);
      const variants = Array.from({ length: 512 }, () => {
        const i = Math.floor(random() * LIST_SECRETS);
        return { path: `${ws}/secrets/${site.secretIds[i]}/reveal`, expect: `{"value":"${secretValue(i)}"}` };
      });
      return {
        ...base,
        method: 'POST',
        path: variants[0]?.path ?? '',
        headers,
        variants,
        check: { status: 200, startsWith: '{"value":' },
      };
    }
    case 'list':
      return {
        ...base,
        method: 'GET',
        path: `${ws}/secrets?limit=${LIST_SECRETS}`,
        headers,
        check: {
          status: 200,
          startsWith: '{"items":[',
          includes: [`"name":"${secretName(0)}"`, `"name":"${secretName(LIST_SECRETS - 1)}"`],
          excludes: [secretValue(0), value],
        },
      };
    case 'send':
      return {
        ...base,
        method: 'POST',
        path: `${ws}/blocks/send`,
        headers: { ...headers, 'content-type': 'application/json' },
        body: payload,
        check: {
          status: 200,
          startsWith: '{"ok":true',
          includes: [`Bearer [secret:${SECRET_NAME}]`],
          excludes: [value],
        },
      };
    case 'run':
      return {
        ...base,
        method: 'POST',
        path: `${ws}/workflows/${site.workflowId}/runs`,
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{}',
        check: {
          status: 201,
          includes: ['"status":"succeeded"', `Bearer [secret:${SECRET_NAME}]`],
          excludes: ['"status":"failed"', value],
        },
      };
  }
}
