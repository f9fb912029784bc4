import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Redactor } from './redactor.js';
import { base64Core, secretForms } from './secret-forms.js';

const SECRET = 'zd-9f8KQ2b/tX+e"é<&>\'vL0pA';
const redactor = new Redactor([{ name: 'zendesk_token', value: SECRET }]);
const TOKEN = '[secret:zendesk_token]';

function htmlEscape(v: string): string {
  return v
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

describe('the redactor', () => {
  it.each([
    ['raw', SECRET],
    ['JSON-escaped', JSON.stringify(SECRET).slice(1, -1)],
    ['JSON-escaped twice (JSON in a JSON string)', JSON.stringify(JSON.stringify(SECRET).slice(1, -1)).slice(1, -1)],
    ['percent-encoded', encodeURIComponent(SECRET)],
    ['form-encoded', encodeURIComponent(SECRET).replaceAll('%20', '+')],
    ['HTML-escaped', htmlEscape(SECRET)],
    ['base64', Buffer.from(SECRET).toString('base64')],
    ['base64 without padding', Buffer.from(SECRET).toString('base64').replace(/=+$/, '')],
    ['base64url', Buffer.from(SECRET).toString('base64url')],
    ['hex', Buffer.from(SECRET).toString('hex')],
    ['HEX', Buffer.from(SECRET).toString('hex').toUpperCase()],
  ])('replaces the %s form', (_label, form) => {
    const out = redactor.redact(`before ${form} after`);
    expect(out).toBe(`before ${TOKEN} after`);
  });

  it.each([0, 1, 2, 3, 4, 5])(
    'leaves nothing decodable inside a longer base64 blob (prefix of %i bytes)',
    (prefixLength) => {
      const prefix = prefixLength === 5 ? Buffer.from('user:') : randomBytes(prefixLength);
      const blob = Buffer.concat([prefix, Buffer.from(SECRET), randomBytes(7)]).toString('base64');
      const out = redactor.redact(`Authorization: Basic ${blob}`);
      expect(out).toContain(TOKEN);
      for (const chunk of out.split(TOKEN)) {
        const decoded = Buffer.from(chunk.replace(/^Authorization: Basic /, ''), 'base64').toString('latin1');
        expect(decoded).not.toContain(SECRET.slice(2, -2));
      }
    },
  );

  it('replaces each trimmed line of 8+ characters of a multi-line value', () => {
    const pem =
      '-----BEGIN KEY-----\n  MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nshort\n-----END KEY-----';
    const r = new Redactor([{ name: 'pem', value: pem }]);
    const out = r.redact(
      'log: MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu and -----END KEY----- and short',
    );
    expect(out).toBe('log: [secret:pem] and [secret:pem] and short');
  });

  it('redacts short values too, raw', () => {
    const r = new Redactor([{ name: 'pin', value: '4711' }]);
    expect(r.redact('pin=4711&x=1')).toBe('pin=[secret:pin]&x=1');
    const tiny = new Redactor([{ name: 'c', value: 'q' }]);
    expect(tiny.redact('aqa')).toBe('a[secret:c]a');
  });

  it('prefers the longest form at a position and handles many secrets', () => {
    const secrets = Array.from({ length: 300 }, (_, i) => ({
      name: `s${i}`,
      value: `${randomBytes(10).toString('hex')}-${i}`,
    }));
    const r = new Redactor([
      ...secrets,
      { name: 'prefix', value: 'abcdefgh' },
      { name: 'longer', value: 'abcdefghijkl' },
    ]);
    expect(r.redact('xx abcdefghijkl yy abcdefgh')).toBe('xx [secret:longer] yy [secret:prefix]');
    const body = secrets.map((s) => `{"k":"${s.value}"}`).join(',');
    expect(r.redact(body)).toBe(secrets.map((s) => `{"k":"[secret:${s.name}]"}`).join(','));
  });

  it('returns the very same string when nothing matches', () => {
    const text = 'nothing to see here, just a long enough string';
    expect(redactor.redact(text)).toBe(text);
    expect(Redactor.NONE.redact(text)).toBe(text);
  });

  it('redacts keys and values deep inside JSON', () => {
    expect(redactor.redactDeep({ a: [SECRET, 1, { [SECRET]: true }], b: null })).toEqual({
      a: [TOKEN, 1, { [TOKEN]: true }],
      b: null,
    });
  });

  it('no form of a random value survives in random text (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60, unit: 'binary' }),
        fc.array(fc.tuple(fc.string({ maxLength: 30 }), fc.nat(100)), { maxLength: 6 }),
        (value, pieces) => {
          fc.pre(!'[secret:v]'.includes(value));
          const r = new Redactor([{ name: 'v', value }]);
          const forms = secretForms(value);
          const text = pieces.map(([filler, pick]) => `${filler}${forms[pick % forms.length]}`).join('');
          const out = r.redact(text);
          for (const chunk of out.split('[secret:v]')) {
            for (const form of forms)
              expect(chunk.includes(form), `${JSON.stringify(form)} in ${JSON.stringify(chunk)}`).toBe(false);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('text without any form of the value comes out unchanged (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
        fc.string({ maxLength: 500, unit: 'binary' }),
        (value, text) => {
          const r = new Redactor([{ name: 'v', value }]);
          fc.pre(!secretForms(value).some((f) => text.includes(f)));
          expect(r.redact(text)).toBe(text);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a base64 core only holds characters fixed by the value', () => {
    const bytes = Buffer.from('secret-value');
    for (const shift of [0, 1, 2] as const) {
      const core = base64Core(bytes, shift);
      for (const prefix of [Buffer.alloc(shift, 0xff), randomBytes(shift)]) {
        expect(Buffer.concat([prefix, bytes, randomBytes(3)]).toString('base64')).toContain(core);
      }
    }
  });
});
