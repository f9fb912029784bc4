import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { COMMON_SINGLE_BYTE } from './charsets.js';
import { Redactor } from './redactor.js';
import { secretForms } from './secret-forms.js';

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
    [
      ".NET's JSON (System.Text.Json: + ' \" & < > and non-ASCII as upper-case \\u)",
      'zd-9f8KQ2b/tX\\u002Be\\u0022\\u00E9\\u003C\\u0026\\u003E\\u0027vL0pA',
    ],
    ["PHP's json_encode (\\/ and non-ASCII as \\u)", 'zd-9f8KQ2b\\/tX+e\\"\\u00e9<&>\'vL0pA'],
    [
      "Gson's default JSON (< > & = ' as lower-case \\u, non-ASCII as is)",
      'zd-9f8KQ2b/tX+e\\"é\\u003c\\u0026\\u003e\\u0027vL0pA',
    ],
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

  it('redacts a base64 key echoed by a Java service through Gson, its padding written \\u003d', () => {
    const key = 'c2stbGl2ZS1hYmNkZWYxMjM0NTY3ODkw==';
    const r = new Redactor([{ name: 'api_key', value: key }]);
    const echoed = JSON.stringify({ key }).replace(/=/g, '\\u003d');
    expect(echoed).toContain('\\u003d\\u003d');
    expect(r.redact(echoed)).toBe('{"key":"[secret:api_key]"}');
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

  it('redacts a lower-cased field name of any form whatever its case, and what redact() catches anyway', () => {
    const r = new Redactor([
      { name: 'mixed', value: 'AKIAx9Jq2LmN8pQ4rS7tUv' },
      { name: 'tiny', value: 'ab1' },
    ]);
    expect(r.redactFolded('x-meta-akiax9jq2lmn8pq4rs7tuv')).toBe('x-meta-[secret:mixed]');
    expect(r.redactFolded('akiax9jq2lmn8pq4rs7tuv-akiax9jq2lmn8pq4rs7tuv')).toBe('[secret:mixed]-[secret:mixed]');
    // Its hex, which redact() matches in lower case already, and a raw value under 4 characters.
    const hex = Buffer.from('AKIAx9Jq2LmN8pQ4rS7tUv').toString('hex');
    expect(r.redactFolded(`x-${hex}`)).toBe('x-[secret:mixed]');
    expect(r.redactFolded('x-ab1')).toBe('x-[secret:tiny]');
    expect(r.redactFolded('content-type')).toBe('content-type');
    // One value the start of another (the longer one mixed-case): no tail of it survives.
    const nested = new Redactor([
      { name: 'user', value: 'sk_live_abcd' },
      { name: 'token', value: 'sk_live_abcdQ7XmP2Lk9' },
    ]);
    const out = nested.redactFolded('x-sk_live_abcdq7xmp2lk9-y');
    expect(out).not.toMatch(/q7xmp|abcd/);
    expect(out).toMatch(/^x-(\[secret:(user|token)\])+-y$/);
    const overlapping = new Redactor([
      { name: 'low', value: 'aaaab' },
      { name: 'mixed', value: 'aaaaBBBB' },
    ]);
    expect(overlapping.redactFolded('aaaabbbb')).not.toMatch(/b/);
  });

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

  it('keeps the tables of every redactor its own while many are built one after another', () => {
    // Tables are cut from shared slabs: enough redactors to fill several, each checked after all are built.
    const values = Array.from({ length: 600 }, (_, i) => `tok-${i}-${randomBytes(9).toString('base64url')}`);
    const redactors = values.map((value, i) => new Redactor([{ name: `s${i}`, value }]));
    values.forEach((value, i) => {
      const text = `a ${value} b ${Buffer.from(value).toString('base64')} c ${values[(i + 1) % values.length]}`;
      expect(redactors[i]?.redact(text)).toBe(`a [secret:s${i}] b [secret:s${i}] c ${values[(i + 1) % values.length]}`);
    });
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

  it('redacts a numeric value answered as a JSON number, also one JSON.parse rounds, and one inside a number', () => {
    const redactor = new Redactor([
      { name: 'PIN', value: '8675309123' },
      { name: 'LONG', value: '12345678901234567891' },
      { name: 'ZERO', value: '0042' },
      { name: 'WORD', value: 'not-a-number-123' },
    ]);
    const parsed = JSON.parse('{"pin":8675309123,"long":12345678901234567891,"zero":42,"in":98675309123,"n":[7,1.5]}');
    expect(redactor.redactDeep(parsed)).toEqual({
      pin: '[secret:PIN]',
      long: '[secret:LONG]',
      zero: '[secret:ZERO]',
      in: '9[secret:PIN]',
      n: [7, 1.5],
    });
    expect(redactor.redactDeep(8675309123n)).toBe('[secret:PIN]');
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

  it('matches a plain leftmost-longest reference: by scan, by automaton, and handing over anywhere (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', 'a', '%', 'Y', 'Q', '=');
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: alphabet, minLength: 1, maxLength: 14 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.string({ unit: alphabet, maxLength: 12 }), fc.nat(200)), { maxLength: 8 }),
        fc.nat(60),
        (values, pieces, allowance) => {
          const secrets = values.map((value, i) => ({ name: `s${i}`, value }));
          const forms = new Map<string, string>();
          for (const { name, value } of secrets)
            for (const form of secretForms(value)) if (!forms.has(form)) forms.set(form, `[secret:${name}]`);
          const all = [...forms.keys()];
          const text = pieces.map(([filler, pick]) => `${filler}${all[pick % all.length]}`).join('');
          const expected = referenceRedact(text, forms);
          expect(new Redactor(secrets).redact(text)).toBe(expected);
          expect(new Redactor(secrets, { automatonOnly: true }).redact(text)).toBe(expected);
          // A tiny budget: the scan hands over to the automaton at some near miss in the middle.
          const handOver = new Redactor(secrets, { nearMissBudget: { perChar: 0, allowance } });
          expect(handOver.redact(text)).toBe(expected);
        },
      ),
      { numRuns: 600 },
    );
  });

  it.each([
    ['the scan', {}],
    ['the automaton', { automatonOnly: true }],
    ['a scan handing over inside the span', { nearMissBudget: { perChar: 0, allowance: 0 } }],
  ] as const)('leaves no character of overlapping occurrences (%s)', (_name, options) => {
    // Two secrets where one's tail is the other's head, and a value whose tail is its own head.
    const pair = new Redactor(
      [
        { name: 'a', value: 'k3y-HEAD-shared' },
        { name: 'b', value: 'shared-TAIL-9zq' },
      ],
      options,
    );
    expect(pair.redact('x k3y-HEAD-shared-TAIL-9zq y')).toBe('x [secret:a][secret:b] y');
    expect(pair.redact('x shared-TAIL-9zq k3y-HEAD-shared y')).toBe('x [secret:b] [secret:a] y');
    const self = new Redactor([{ name: 's', value: 'abc-abc' }], options);
    expect(self.redact('<abc-abc-abc-abc>')).toBe('<[secret:s]>');
    // Back to back, many times over: one replacement per span, whatever its length.
    const run = new Redactor([{ name: 'r', value: 'aaaaaaaa' }], options);
    expect(run.redact(`[${'a'.repeat(100_000)}]`)).toBe('[[secret:r]]');
    // Each extension is charged to the near-miss budget: the scan stays linear there too.
    expect(run.stats.nearMissChars).toBeLessThanOrEqual(2 * 100_002 + 4096 + 8);
  });

  it('covers exactly the characters of every occurrence, overlapping ones too (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', 'Y');
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: alphabet, minLength: 1, maxLength: 9 }), { minLength: 1, maxLength: 3 }),
        fc.string({ unit: fc.constantFrom('a', 'b', 'Y', '~'), maxLength: 80 }),
        fc.nat(40),
        (values, text, allowance) => {
          const secrets = values.map((value, i) => ({ name: `s${i}`, value }));
          const forms = secrets.flatMap(({ value }) => secretForms(value));
          const covered = new Array<boolean>(text.length).fill(false);
          for (const form of forms)
            for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + 1))
              covered.fill(true, at, at + form.length);
          const left = [...text].filter((_, k) => !covered[k]).join('');
          for (const options of [{}, { automatonOnly: true }, { nearMissBudget: { perChar: 0, allowance } }]) {
            const out = new Redactor(secrets, options).redact(text);
            expect(out.replace(/\[secret:s\d\]/g, '')).toBe(left);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ['the three-character skip table', {}, 'skip'],
    ['the rolling scan', { noSkip: true }, 'rolling'],
  ] as const)(
    'matches the reference with hundreds of secrets too (%s), and when handing over (property)',
    (_name, options, mode) => {
      // Many forms over a wide alphabet: too many two-character blocks end a form for the small skip table.
      const wide = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=%'.split(''));
      const narrow = fc.constantFrom('a', 'b', 'Y');
      fc.assert(
        fc.property(
          fc.array(fc.string({ unit: wide, minLength: 8, maxLength: 14 }), { minLength: 700, maxLength: 720 }),
          fc.array(fc.tuple(fc.string({ unit: fc.oneof(wide, narrow), maxLength: 10 }), fc.nat(100_000)), {
            maxLength: 12,
          }),
          (values, pieces) => {
            const secrets = values.map((value, i) => ({ name: `s${i}`, value }));
            const forms = new Map<string, string>();
            for (const { name, value } of secrets)
              for (const form of secretForms(value)) if (!forms.has(form)) forms.set(form, `[secret:${name}]`);
            const all = [...forms.keys()];
            // Whole forms, and forms cut short (near misses).
            const text = pieces
              .map(([filler, pick]) => {
                const form = all[pick % all.length] as string;
                return `${filler}${pick % 3 === 0 ? form.slice(0, -1) : form}`;
              })
              .join('');
            const expected = referenceRedact(text, forms);
            const r = new Redactor(secrets, options);
            expect(r.scanMode).toBe(mode);
            if (mode === 'skip') expect(r.skipBlock).toBe(3);
            expect(r.redact(text)).toBe(expected);
            expect(
              new Redactor(secrets, { ...options, nearMissBudget: { perChar: 0, allowance: 20 } }).redact(text),
            ).toBe(expected);
          },
        ),
        { numRuns: 25 },
      );
    },
  );

  it('skips through ordinary text with the few forms of one execution, and agrees with the automaton', () => {
    const value = 'sk_live_4f9a8b7c6d5e4f3a2b1c';
    const r = new Redactor([{ name: 'tok', value }]);
    const automaton = new Redactor([{ name: 'tok', value }], { automatonOnly: true });
    const body = JSON.stringify({
      id: 'evt_1',
      echo: { authorization: `Bearer ${value}`, basic: Buffer.from(`user:${value}`).toString('base64') },
      note: 'lorem ipsum '.repeat(80),
      hex: Buffer.from(value).toString('hex'),
    });
    expect(r.scanMode).toBe('skip');
    expect(r.skipBlock).toBe(2);
    const out = r.redact(body);
    expect(out).toBe(automaton.redact(body));
    expect(out).not.toContain(value);
    expect(out.split('[secret:tok]').length - 1).toBe(3);
    expect(r.stats.automatonScans).toBe(0);
  });

  it('stays linear on text built to defeat the scan: the near-miss budget hands over to the automaton', () => {
    // A value that repeats one short pattern, and an upstream answering that pattern over and over:
    // every position matches the first thousands of characters of the value, then fails.
    const value = `${'a'.repeat(2_000)}b`;
    const r = new Redactor([{ name: 'silly', value }]);
    const n = 200_000;
    const text = `${'a'.repeat(n)}${value}${'a'.repeat(3_000)}`;
    const out = r.redact(text);
    expect(out).toBe(`${'a'.repeat(n)}[secret:silly]${'a'.repeat(3_000)}`);
    expect(r.stats.automatonScans).toBe(1);
    // Without the budget this would compare about n × 2,000 characters.
    expect(r.stats.nearMissChars).toBeLessThanOrEqual(2 * text.length + 4096 + 4 * value.length);
  });

  it.each([
    // A long form almost matches at every position, then a shorter form of the same value matches there.
    [
      'a long line and a short line of one value (one window)',
      [{ name: 's', value: `${'a'.repeat(4_000)}b\naaaaaaaa` }],
    ],
    // The same with two secrets, one of them shorter than the 8-character window.
    [
      'a long value and a short one (several windows)',
      [
        { name: 'long', value: `${'a'.repeat(2_000)}b` },
        { name: 's', value: 'aaaa' },
      ],
    ],
  ])('stays linear when a shorter form matches after a long near miss: %s', (_label, secrets) => {
    const n = 48_000;
    const r = new Redactor(secrets);
    const out = r.redact('a'.repeat(n));
    // The short form occurs at every position: one covered span.
    expect(out).toBe('[secret:s]');
    expect(r.stats.automatonScans).toBe(1);
    expect(r.stats.nearMissChars).toBeLessThanOrEqual(2 * n + 4096 + 4 * 4_010);
  });

  it('does not hand ordinary text to the automaton: near misses on a shared prefix are charged what they compared', () => {
    // A PEM private key in play, and a response full of certificates: every "-----BEGIN " is a near miss.
    const key = `-----BEGIN PRIVATE KEY-----\n${randomBytes(1_200).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----`;
    const r = new Redactor([{ name: 'signing_key', value: key }]);
    const cert = `-----BEGIN CERTIFICATE-----\n${randomBytes(1_200).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const body = JSON.stringify({ chain: cert.repeat(40) });
    expect(r.redact(body)).toBe(body);
    expect(r.stats.automatonScans).toBe(0);
  });

  it('computes exactly the forms of the plain definition, shortcuts and all (property)', () => {
    const tricky = fc.constantFrom(
      '"',
      '\\',
      '/',
      '%',
      ' ',
      '+',
      '!',
      "'",
      '(',
      ')',
      '~',
      '*',
      '&',
      '<',
      '>',
      '\n',
      '\u007f',
      'é',
      '€',
      '😀',
      // CJK: Shift_JIS, EUC-JP, GBK, Big5, EUC-KR write some, not all (ー has no EUC-KR code, 龦 none
      // but GB18030's; ｶ is half-width, ¥ JIS-Roman in ISO-2022-JP).
      'パ',
      'ー',
      '秘',
      '鍵',
      '한',
      '龦',
      'ｶ',
      '¥',
      '=',
      '\t',
      '\u2028',
      // A lone surrogate: secret creation refuses it; here both definitions must throw alike.
      '\ud800',
    );
    const value = fc.oneof(
      fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
      fc.string({ minLength: 1, maxLength: 40, unit: fc.oneof(tricky, fc.constantFrom('a', 'Z', '0')) }),
    );
    fc.assert(
      fc.property(value, (v) => {
        const outcome = (f: (v: string) => string[]) => {
          try {
            return new Set(f(v));
          } catch (error) {
            return String(error);
          }
        };
        expect(outcome(secretForms)).toEqual(outcome(plainSecretForms));
      }),
      { numRuns: 2_000 },
    );
  });

  it('lists each form once, also for a many-line value with hundreds of forms (past the linear check)', () => {
    const pem = [
      '-----BEGIN PRIVATE KEY-----',
      ...Array.from({ length: 30 }, (_, i) => randomBytes(48).toString('base64') + (i % 7 === 0 ? '/+' : '')),
      // Repeated lines give repeated forms: each must be listed once.
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
      '-----END PRIVATE KEY-----',
    ].join('\n');
    for (const value of [pem, pem.replaceAll('\n', '\r\n'), 'Zq8xK2mP9vL4nR7tY3wB6cD1']) {
      const forms = secretForms(value);
      expect(forms.length).toBe(new Set(forms).size);
      expect(new Set(forms)).toEqual(new Set(plainSecretForms(value)));
      for (let i = 1; i < forms.length; i++) {
        expect((forms[i] as string).length).toBeLessThanOrEqual((forms[i - 1] as string).length);
      }
    }
    expect(secretForms(pem).length).toBeGreaterThan(100);
  });

  it('finds a non-ASCII value written in another charset in bytes (for an answer read in the charset it declares)', () => {
    const body = (bytes: Buffer) => Buffer.concat([iconv.encode('答え: ', 'shift_jis'), bytes, Buffer.from(';')]);
    for (const charset of [
      'shift_jis',
      'euc-jp',
      'gbk',
      'gb18030',
      'big5',
      'euc-kr',
      'utf-16le',
      'utf-16be',
      'koi8-r',
    ]) {
      const value = charset === 'euc-kr' ? '비밀번호' : charset === 'koi8-r' ? 'пароль' : '秘密鍵暗号';
      const redactor = new Redactor([
        { name: 'other', value: 'AKIAx9Jq2LmN' },
        { name: 'k', value },
      ]);
      expect(redactor.holdsEncodedValue(body(iconv.encode(value, charset))), charset).toBe(true);
      expect(redactor.holdsEncodedValue(body(Buffer.from('nothing here'))), charset).toBe(false);
    }
    // UTF-8 bytes, and an ASCII value in any charset, show in the bytes' UTF-8 reading, which redact checks.
    const redactor = new Redactor([
      { name: 'k', value: '秘密鍵暗号' },
      { name: 'ascii', value: 'AKIAx9Jq2LmN' },
    ]);
    expect(redactor.holdsEncodedValue(body(Buffer.from('秘密鍵暗号')))).toBe(false);
    expect(redactor.holdsEncodedValue(body(iconv.encode('AKIAx9Jq2LmN', 'utf-16le')))).toBe(false);
  });

  it('catches the value inside a longer base64 string at each of the three byte alignments', () => {
    const value = 'secret-value';
    const redactor = new Redactor([{ name: 'k', value }]);
    for (const shift of [0, 1, 2]) {
      for (const prefix of [Buffer.alloc(shift, 0xff), randomBytes(shift)]) {
        const text = Buffer.concat([prefix, Buffer.from(value), randomBytes(3)]).toString('base64');
        expect(redactor.redact(text), `shift ${shift}`).toContain('[secret:k]');
        // Exactly the characters the value's bits decide are replaced; the neighbouring bytes decide the rest.
        const [before = '', after = ''] = redactor.redact(text).split('[secret:k]');
        expect(before.length).toBe(Math.ceil((shift * 8) / 6));
        expect(after.length).toBe(text.length - Math.floor(((shift + value.length) * 8) / 6));
      }
    }
  });
});

/** Leftmost-longest replacement by brute force: the specification the redactor must meet. */
/**
 * Leftmost-longest by its plain definition; a form starting inside a
 * replaced span and running past its end extends it (each secret's
 * replacement written once per span).
 */
function referenceRedact(text: string, forms: Map<string, string>): string {
  const longestAt = (i: number) => {
    let best = '';
    for (const form of forms.keys()) if (form.length > best.length && text.startsWith(form, i)) best = form;
    return best;
  };
  let out = '';
  let i = 0;
  while (i < text.length) {
    const best = longestAt(i);
    if (best) {
      const labels = [forms.get(best)];
      let end = i + best.length;
      for (let j = i + 1; j < end; j++) {
        const inner = longestAt(j);
        if (j + inner.length <= end) continue;
        end = j + inner.length;
        if (!labels.includes(forms.get(inner))) labels.push(forms.get(inner));
      }
      out += labels.join('');
      i = end;
    } else {
      out += text[i];
      i += 1;
    }
  }
  return out;
}

/**
 * The forms by their plain definition, every encoding computed (the
 * implementation skips those that cannot differ from the value).
 */
function plainSecretForms(value: string): string[] {
  const htmlEscape = (v: string, quote: string, apos: string) =>
    v.replace(/[&<>"']/g, (c) =>
      c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? quote : apos,
    );
  const valueForms = (v: string): string[] => {
    const bytes = Buffer.from(v, 'utf8');
    const percent = encodeURIComponent(v);
    const b64 = bytes.toString('base64');
    const json = JSON.stringify(v).slice(1, -1);
    const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    const ascii = json.replace(/[\u007f-\uffff]/g, u);
    const strict = percent.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const forms = [
      v,
      new URLSearchParams([['', v]]).toString().slice(1),
      bytes.toString('latin1'),
      json,
      ascii,
      ascii.replace(/\\u[0-9a-f]{4}/g, (m) => `\\u${m.slice(2).toUpperCase()}`),
      json.replace(/[&<>\u2028\u2029]/g, u),
      // .NET System.Text.Json's default encoder.
      ascii
        .replaceAll('\\"', '\\u0022')
        .replace(/[&<>'+`]/g, u)
        .replace(/\\u[0-9a-f]{4}/g, (m) => `\\u${m.slice(2).toUpperCase()}`),
      // Gson's default (HTML-safe) writer.
      json.replace(/[<>&='\u2028\u2029]/g, u),
      json.replaceAll('/', '\\/'),
      // PHP's json_encode: \/ with \uXXXX, lower or upper case.
      ascii.replaceAll('/', '\\/'),
      ascii.replace(/\\u[0-9a-f]{4}/g, (m) => `\\u${m.slice(2).toUpperCase()}`).replaceAll('/', '\\/'),
      strict,
      strict.replaceAll('%2F', '/'),
      strict.replaceAll('%20', '+'),
      encodeURI(v),
      JSON.stringify(json).slice(1, -1),
      percent,
      percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
      percent.replaceAll('%20', '+'),
      htmlEscape(v, '&quot;', '&#39;'),
      htmlEscape(v, '&#34;', '&#x27;'),
      htmlEscape(v, '&quot;', '&apos;'),
      b64,
      b64.replace(/=+$/, ''),
      bytes.toString('base64url'),
      bytes.toString('hex'),
      bytes.toString('hex').toUpperCase(),
    ];
    for (const shift of [0, 1, 2]) {
      const text = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(2)]).toString('base64');
      const first = Math.ceil((shift * 8) / 6);
      const last = Math.floor(((shift + bytes.length) * 8) / 6);
      const core = last > first ? text.slice(first, last) : '';
      forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
    }
    // Bytes of another encoding read as UTF-8 — ISO-8859-1, each common single-byte and multi-byte
    // charset (when it has non-ASCII characters and can write them all), ISO-2022-JP, UTF-16LE/BE —
    // kept when 4+ characters are neither U+FFFD nor NUL; each also without the bytes whose reading
    // depends on the bytes around (continuation bytes first, an unfinished sequence last).
    const misread: string[] = [];
    const inContext = (bytes: Buffer) =>
      Buffer.from(
        bytes
          .toString('latin1')
          .replace(/^[\x80-\xbf]+/, '')
          .replace(/(?:[\xc2-\xdf]|[\xe0-\xef][\x80-\xbf]?|[\xf0-\xf4][\x80-\xbf]{0,2})$/, ''),
        'latin1',
      ).toString('utf8');
    const both = (bytes: Buffer) => misread.push(bytes.toString('utf8'), inContext(bytes));
    if (/[\u0080-\uffff]/.test(v)) {
      both(Buffer.from(v, 'latin1'));
      for (const name of COMMON_SINGLE_BYTE) {
        const decoder = new TextDecoder(name);
        const byChar = new Map<string, number>();
        for (let b = 0; b < 256; b++) byChar.set(decoder.decode(Uint8Array.of(b)), b);
        if (name === 'windows-1252') byChar.set('€', 0x80); // Node 20's decoder reads 0x80 as a control
        const bytes = [...v].map((c) => byChar.get(c));
        if (bytes.every((b) => b !== undefined)) both(Buffer.from(bytes as number[]));
      }
      for (const name of ['shift_jis', 'euc-jp', 'gbk', 'gb18030', 'big5', 'euc-kr']) {
        // Character by character: one the charset has no code for comes out "?".
        const chars = [...v].map((c) => iconv.encode(c, name));
        if (chars.every((bytes, i) => bytes.toString('latin1') !== '?' || [...v][i] === '?'))
          both(Buffer.concat(chars));
      }
      const jis = plainIso2022Jp(v);
      if (jis !== null) {
        // Without the switch into JIS X 0208 in front, and back to ASCII at the end.
        misread.push(jis, jis.slice(jis.startsWith('\x1b$B') ? 3 : 0, jis.endsWith('\x1b(B') ? -3 : jis.length));
      }
      // UTF-16 read alone is below (a NUL less at one end); read in context, when that differs.
      for (const bytes of [Buffer.from(v, 'utf16le'), Buffer.from(v, 'utf16le').swap16()]) {
        if (inContext(bytes) !== bytes.toString('utf8')) misread.push(inContext(bytes));
      }
    }
    const le = Buffer.from(v, 'utf16le').toString('utf8');
    const be = Buffer.from(v, 'utf16le').swap16().toString('utf8');
    misread.push(le.replace(/\0$/, ''), be.replace(/^\0/, ''));
    forms.push(...misread.filter((f) => f.replace(/[\ufffd\0]/g, '').length >= 4));
    return forms;
  };
  const forms = new Set<string>([value]);
  const sources = [value];
  if (value.trim() !== value && value.trim().length >= 8) sources.push(value.trim());
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r\n|\r|\n/)) if (line.trim().length >= 8) sources.push(line.trim());
  }
  for (const source of sources)
    for (const form of valueForms(source)) if (form.length >= 4 || form === value) forms.add(form);
  return [...forms];
}

/**
 * `text` in ISO-2022-JP as the WHATWG encoder writes it from the ASCII
 * state, character by character (JIS X 0208 codes from their EUC-JP bytes,
 * less the high bit); null when one needs more than ASCII and JIS X 0208.
 */
function plainIso2022Jp(text: string): string | null {
  let out = '';
  let state = 'ascii';
  for (const c of text) {
    const code = c.codePointAt(0) as number;
    if (code < 0x80) {
      if (state !== 'ascii') out += '\x1b(B';
      state = 'ascii';
      out += c;
      continue;
    }
    const euc = iconv.encode(c, 'euc-jp');
    if (c === '¥' || c === '‾' || euc.length !== 2 || (euc[0] as number) < 0xa1 || (euc[1] as number) < 0xa1)
      return null;
    if (state !== 'jis') out += '\x1b$B';
    state = 'jis';
    out += String.fromCharCode((euc[0] as number) - 0x80, (euc[1] as number) - 0x80);
  }
  return state === 'jis' ? `${out}\x1b(B` : out;
}
