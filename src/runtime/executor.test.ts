/**
 * The executor's contract on a later redirect hop, against a real HTTP server
 * on 127.0.0.1: a refusal there (the secret purged meanwhile) is a failed
 * call whose secret counts as sent — the first request carried it — never a
 * thrown refusal that would leave its use unaudited.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, BlockList } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../app/errors.js';
import { apiBlockSchema } from '../modules/workflows/block-schema.js';
import { executeApiBlock, type SecretMaterial } from './executor.js';
import { createOutboundClient } from './outbound.js';

let server: Server;
let origin = '';
const received: { url: string; auth: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({ url: req.url ?? '', auth: req.headers.authorization });
    if (req.url === '/start') {
      res.writeHead(302, { location: '/next' });
      return void res.end();
    }
    res.end('done');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('the executor on a later hop', () => {
  it('a refusal after the first request went out is a failed call with the secret counted as sent', async () => {
    const loopback = new BlockList();
    loopback.addSubnet('127.0.0.0', 8, 'ipv4');
    const client = createOutboundClient({ allow: loopback });
    const secret: SecretMaterial = { id: 'sec_1', name: 'tok', value: 'later-hop-value-0123', allowedHosts: [] };
    try {
      const result = await executeApiBlock(
        apiBlockSchema.parse({
          id: 'call',
          type: 'api',
          method: 'GET',
          url: `${origin}/start`,
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:tok}}' }],
        }),
        {
          variables: new Map(),
          loadSecret: async () => secret,
          checkHost: async () => {
            // Purged once the first request has gone out.
            if (received.length === 0) return true;
            throw new AppError(422, 'secret_unavailable', 'The secret "tok" does not exist or is deleted.');
          },
          client,
        },
      );
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ code: 'secret_unavailable' });
      expect(result.secretsSent).toEqual([{ id: 'sec_1', name: 'tok', host: '127.0.0.1' }]);
      expect(received.map((r) => [r.url, r.auth])).toEqual([['/start', 'Bearer later-hop-value-0123']]);
      expect(JSON.stringify(result.request)).not.toContain(secret.value);
    } finally {
      await client.close();
    }
  });
});
