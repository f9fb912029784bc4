/**
 * Redaction of answers that are not UTF-8 text (SPEC §3 "Redaction"): an
 * upstream that echoes a header value as the ISO-8859-1 bytes it arrived in,
 * answers in ISO-8859-1 or UTF-16 (declared or not), labels UTF-8 with
 * another charset, answers in a multi-byte charset (Shift_JIS, EUC-JP, GBK,
 * Big5, EUC-KR, ISO-2022-JP; declared or not), or echoes the value as a
 * header *name* (which the HTTP client lower-cases). In each case the caller
 * sees `[secret:NAME]`, never a readable remainder of the value; an answer
 * that declares a charset Hush can read back reads as its text.
 */
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASES } from '../support/databases.js';
import { setupOwner } from '../support/fixtures.js';
import { startTestApp, type TestApp, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

/** Non-ASCII in the middle, long readable ASCII on both sides. */
const ACCENTED = 'Zugangsschlüssel-7c1e9a44d2';
/** ASCII only, mixed case. */
const MIXED = 'AKIAx9Jq2LmN8pQ4rS7tUv';
const NUL = String.fromCharCode(0);
/** CJK values with long readable ASCII after, and the charsets that write each (with a greeting in them). */
const JAPANESE = 'パスワード-2024-abcdef';
const CJK_ECHOES = [
  ['shift_jis', JAPANESE, 'あなたの合言葉は'],
  ['euc-jp', JAPANESE, 'あなたの合言葉は'],
  ['gbk', '密码口令-2024-abcdef', '您的密码是'],
  ['gb18030', '密码口令-2024-abcdef', '您的密码是'],
  ['big5', '密碼口令-2024-abcdef', '您的密碼是'],
  ['euc-kr', '비밀번호-2024-abcdef', '당신의 비밀번호는'],
] as const;
/** Answers in the language of each charset. */
const GREETINGS = [
  ['shift_jis', 'こんにちは、世界。ご注文を承りました（ｶﾀｶﾅ）。'],
  ['euc-jp', 'こんにちは、世界。ご注文を承りました。'],
  ['gbk', '你好，世界。您的订单已确认。'],
  ['big5', '你好，世界。您的訂單已確認。'],
  ['euc-kr', '안녕하세요, 세계. 주문이 확인되었습니다.'],
  ['utf-16le', 'こんにちは、世界。'],
] as const;

describe.each(DATABASES)('redaction of answers in other charsets on $kind', ({ kind, available }) => {
  let t: TestApp;
  let up: Upstream;
  let owner: TestClient;
  let ws: string;

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    t = await startTestApp(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
    const o = await setupOwner(t);
    owner = o.owner;
    ws = `/api/v1/workspaces/${o.workspaceId}`;
    for (const [name, value] of [
      ['accented', ACCENTED],
      ['mixed', MIXED],
    ]) {
      const s = await owner.post(`${ws}/secrets`, { name, visibility: 'masked', value });
      expect(s.status, s.text).toBe(201);
    }
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await up?.close();
  });

  /** Sends the secret as `X-K` to a route whose answer `answer` writes from the header's bytes. */
  async function echo(name: string, answer: (bytes: Buffer, res: import('node:http').ServerResponse) => void) {
    up.handle((req, res) => answer(Buffer.from(String(req.headers['x-k']), 'latin1'), res));
    const res = await owner.post(`${ws}/blocks/send`, {
      block: {
        id: 'b',
        type: 'api',
        method: 'GET',
        url: `${up.url}/echo`,
        headers: [{ key: 'X-K', value: `{{secret:${name}}}` }],
      },
    });
    expect(res.status, res.text).toBe(200);
    return res;
  }

  async function createSecret(name: string, value: string) {
    const created = await owner.post(`${ws}/secrets`, { name, visibility: 'masked', value });
    expect(created.status, created.text).toBe(201);
  }

  /** Sends the secret as `{"pw": …}` (a JSON body: any character goes) to `path`, capturing `$.echo` as `got`. */
  async function sendInBody(name: string, path: string) {
    const res = await owner.post(`${ws}/blocks/send`, {
      block: {
        id: 'b',
        type: 'api',
        method: 'POST',
        url: `${up.url}${path}`,
        body: { mode: 'json', content: `{"pw":"{{secret:${name}}}"}` },
        capture: [{ variable: 'got', path: '$.echo' }],
      },
    });
    expect(res.status, res.text).toBe(200);
    return res;
  }

  /** Nothing of the value readable: neither side of its non-ASCII character, nor its characters with NULs between. */
  function expectUnreadable(text: string, value: string) {
    const plain = text.replaceAll(NUL, '');
    for (const part of [value, ...value.split(/[^\x20-\x7e]/).filter((p) => p.length >= 8)]) {
      expect(plain).not.toContain(part);
      expect(plain.toLowerCase()).not.toContain(part.toLowerCase());
    }
  }

  it.runIf(available)(
    'a header value echoed as the ISO-8859-1 bytes it went out in, without a charset: no readable remainder',
    async () => {
      const res = await echo('accented', (bytes, r) => {
        r.setHeader('content-type', 'text/plain');
        r.end(Buffer.concat([Buffer.from('you sent: '), bytes]));
      });
      expect(up.received.at(-1)?.headers['x-k']).toBe(ACCENTED);
      expect(res.body.response.body).toBe('you sent: [secret:accented]');
      expectUnreadable(res.text, ACCENTED);
    },
  );

  it.runIf(available)('an answer that declares ISO-8859-1 is read in it, and redacted', async () => {
    const res = await echo('accented', (bytes, r) => {
      r.setHeader('content-type', 'text/plain; charset=ISO-8859-1');
      r.end(Buffer.concat([Buffer.from('Grüße, ', 'latin1'), bytes]));
    });
    expect(res.body.response.body).toBe('Grüße, [secret:accented]');
    expectUnreadable(res.text, ACCENTED);
  });

  it.runIf(available)(
    'a value echoed in the single-byte charset the answer declares (windows-1251, windows-1252) is redacted',
    async () => {
      for (const [name, value, charset] of [
        ['cyrillic', 'KyivКІЇВ2024-passw0rd!', 'windows-1251'],
        ['western', 'geheimÖ€Key42-passw0rd', 'windows-1252'],
      ] as const) {
        await createSecret(name, value);
        up.handle((req, res) => {
          res.setHeader('content-type', `application/json; charset=${charset}`);
          res.end(encodeSingleByte(JSON.stringify({ echo: JSON.parse(req.body).pw }), charset));
        });
        const res = await sendInBody(name, '/store');
        expect(res.body.response.body, charset).toBe(`{"echo":"[secret:${name}]"}`);
        expect(res.body.captures.got).toBe(`[secret:${name}]`);
        expectUnreadable(res.text, value);
      }
    },
  );

  it.runIf(available)(
    'a Cyrillic value echoed in windows-1251 without a charset: no readable ASCII remainder (byte pairs that read as UTF-8)',
    async () => {
      for (const [i, value] of ['вікно-SECRET-2024-xyz', 'Віктор-SECRET-2024-xyz', 'зелёный-SECRET-2024'].entries()) {
        const name = `cp1251_${i}`;
        await createSecret(name, value);
        up.handle((req, res) => {
          res.setHeader('content-type', 'text/plain');
          res.end(
            Buffer.concat([Buffer.from('got: '), encodeSingleByte(String(JSON.parse(req.body).pw), 'windows-1251')]),
          );
        });
        const res = await sendInBody(name, '/store');
        expect(res.body.response.body, value).toBe(`got: [secret:${name}]`);
      }
    },
  );

  it.runIf(available)(
    'a value of non-ASCII letters only does not mark stray bytes of an unrelated answer',
    async () => {
      const created = await owner.post(`${ws}/secrets`, {
        name: 'cyrillic_only',
        visibility: 'masked',
        value: 'пароль',
      });
      expect(created.status, created.text).toBe(201);
      up.handle((_req, res) => {
        res.setHeader('content-type', 'application/octet-stream');
        res.end(Buffer.concat([Buffer.from('PNG '), Buffer.alloc(6, 0xff), Buffer.from(' end')]));
      });
      const res = await sendInBody('cyrillic_only', '/image');
      expect(res.body.response.body).toBe(`PNG ${'\ufffd'.repeat(6)} end`);
    },
  );

  it.runIf(available)('an answer holding a value in two encodings at once is withheld, not half redacted', async () => {
    const value = 'KyivКІЇВ2024-passw0rd!';
    await createSecret('twice', value);
    up.handle((req, res) => {
      const got = String(JSON.parse(req.body).pw);
      res.setHeader('content-type', 'text/plain; charset=windows-1251');
      // Once as UTF-8 and once in windows-1251: each reading shows only one of them.
      res.end(Buffer.concat([Buffer.from(`${got} / `), encodeSingleByte(got, 'windows-1251')]));
    });
    const res = await sendInBody('twice', '/twice');
    expect(res.body.response.body).toMatch(/^\[withheld: /);
    expectUnreadable(res.text, value);
  });

  it.runIf(available)(
    'a charset the upstream declares does not decide: UTF-8 labelled UTF-16 is not turned into reversible CJK',
    async () => {
      for (const label of ['utf-16', 'utf-16le', 'utf-16be', 'windows-1252']) {
        const res = await echo('mixed', (bytes, r) => {
          r.setHeader('content-type', `text/plain; charset=${label}`);
          r.end(Buffer.concat([Buffer.from('key='), bytes, Buffer.from(';')]));
        });
        expect(res.body.response.body, label).toBe('key=[secret:mixed];');
      }
    },
  );

  it.runIf(available).each([
    ['declared utf-16le', 'text/plain; charset=utf-16le', 'le'],
    ['declared utf-16be', 'text/plain; charset="UTF-16BE"', 'be'],
    ['declared utf-16, big-endian with a byte-order mark (Java)', 'text/plain; charset=UTF-16', 'be-bom'],
    ['undeclared, little-endian', 'text/plain', 'le'],
    ['undeclared, big-endian', 'application/octet-stream', 'be'],
  ] as const)('an answer in UTF-16 (%s): redacted, no NUL-spaced copy', async (_label, type, order) => {
    for (const name of ['mixed', 'accented'] as const) {
      const value = name === 'mixed' ? MIXED : ACCENTED;
      const res = await echo(name, (bytes, r) => {
        const text = Buffer.from(`key=${bytes.toString('latin1')};`, 'utf16le');
        r.setHeader('content-type', type);
        const bytesOut = order === 'le' ? text : Buffer.from(text).swap16();
        r.end(order === 'be-bom' ? Buffer.concat([Buffer.from([0xfe, 0xff]), bytesOut]) : bytesOut);
      });
      expect(res.body.response.body).toContain(`[secret:${name}]`);
      // Undeclared non-ASCII: the ASCII on either side is what a reader could use.
      expectUnreadable(res.text, value);
    }
  });

  it.runIf(available)(
    'a value with € echoed in windows-1252 (€ is byte 0x80): no readable remainder either side of it',
    async () => {
      const value = 'Passwort€2024-geheim-xyz';
      await createSecret('euro', value);
      up.handle((req, res) => {
        const got = String(JSON.parse(req.body).pw);
        const cp1252 = Buffer.from(got.replace('€', '\u0080'), 'latin1');
        res.setHeader('content-type', 'text/plain; charset=windows-1252');
        res.end(Buffer.concat([Buffer.from('stored: '), cp1252]));
      });
      const res = await sendInBody('euro', '/store');
      expect(res.body.response.body).toBe('stored: [secret:euro]');
      expectUnreadable(res.text, value);
    },
  );

  it.runIf(available).each(GREETINGS)(
    'an answer in %s that says so reads as its text, not as UTF-8 mojibake',
    async (charset, text) => {
      up.handle((_req, res) => {
        res.setHeader('content-type', `text/plain; charset=${charset}`);
        res.end(iconv.encode(text, charset));
      });
      const res = await owner.post(`${ws}/blocks/send`, {
        block: { id: 'b', type: 'api', method: 'GET', url: `${up.url}/hello` },
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.response.body).toBe(text);
    },
  );

  it.runIf(available)('a run record holds a Shift_JIS answer as its text, and what it captured from it', async () => {
    const answer = JSON.stringify({ greeting: 'こんにちは、世界', city: '東京' });
    up.handle((_req, res) => {
      res.setHeader('content-type', 'application/json; charset=Shift_JIS');
      res.end(iconv.encode(answer, 'shift_jis'));
    });
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Shift_JIS',
      startBlockId: 'call',
      blocks: [
        {
          id: 'call',
          type: 'api',
          method: 'GET',
          url: `${up.url}/hello`,
          capture: [{ variable: 'greeting', path: '$.greeting' }],
        },
      ],
    });
    expect(wf.status, wf.text).toBe(201);
    const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, {});
    expect(run.status, run.text).toBe(201);
    expect(run.body.status).toBe('succeeded');
    expect(run.body.steps[0].response.body).toBe(answer);
    expect(run.body.variables.greeting).toBe('こんにちは、世界');
    const again = await owner.get(`${ws}/runs/${run.body.id}`);
    expect(again.body.steps[0].response.body).toBe(answer);
    expect(again.body.variables.greeting).toBe('こんにちは、世界');
  });

  it.runIf(available).each(CJK_ECHOES)(
    'a CJK value echoed in %s, declared or not: no value, no readable ASCII remainder',
    async (charset, value, greeting) => {
      const name = `cjk_${charset.replace('-', '_')}`;
      await createSecret(name, value);
      for (const declared of [true, false]) {
        up.handle((req, res) => {
          res.setHeader('content-type', declared ? `application/json; charset=${charset}` : 'application/json');
          res.end(iconv.encode(JSON.stringify({ note: greeting, echo: JSON.parse(req.body).pw }), charset));
        });
        const res = await sendInBody(name, '/store');
        expect(JSON.parse(up.received.at(-1)?.body ?? '{}').pw).toBe(value);
        expectUnreadable(res.text, value);
        expect(res.body.captures.got, `${charset}, declared: ${declared}`).toBe(`[secret:${name}]`);
        if (declared) expect(res.body.response.body).toBe(JSON.stringify({ note: greeting, echo: `[secret:${name}]` }));
        else expect(res.body.response.body).toContain(`"echo":"[secret:${name}]"`);
      }
    },
  );

  it.runIf(available)(
    'a CJK value echoed in ISO-2022-JP (seven bits: it reads as ASCII), declared or not: no value, no remainder',
    async () => {
      await createSecret('cjk_jis', JAPANESE);
      for (const type of ['text/plain; charset=ISO-2022-JP', 'text/plain']) {
        up.handle((req, res) => {
          res.setHeader('content-type', type);
          res.end(Buffer.concat([Buffer.from('you sent: '), iso2022Jp(JSON.parse(req.body).pw)]));
        });
        const res = await sendInBody('cjk_jis', '/store');
        expect(JSON.parse(up.received.at(-1)?.body ?? '{}').pw).toBe(JAPANESE);
        expect(res.body.response.body, type).toBe('you sent: [secret:cjk_jis]');
        expectUnreadable(res.text, JAPANESE);
      }
    },
  );

  it.runIf(available)(
    'an answer that says Shift_JIS and holds a value in it and as UTF-8 is withheld; one whose UTF-8 bytes Shift_JIS cannot read reads as UTF-8',
    async () => {
      // 暗号キー's UTF-8 bytes read as Shift_JIS characters that write back to them: two readings, a value in each.
      for (const [name, value, body] of [
        ['withheld', '暗号キー-2024-abcdef', /^\[withheld: /],
        // パスワード's UTF-8 bytes end in 0x89, which Shift_JIS reads with the "-" after it as U+FFFD and "-".
        ['lossy', JAPANESE, /^\[secret:lossy\] \/ \[secret:lossy\]$/],
      ] as const) {
        await createSecret(name, value);
        up.handle((req, res) => {
          const got = String(JSON.parse(req.body).pw);
          res.setHeader('content-type', 'text/plain; charset=shift_jis');
          res.end(Buffer.concat([Buffer.from(`${got} / `), iconv.encode(got, 'shift_jis')]));
        });
        const res = await sendInBody(name, '/twice');
        expect(res.body.response.body, name).toMatch(body);
        expectUnreadable(res.text, value);
      }
    },
  );

  it.runIf(available)(
    'a value of Hangul alone echoed in EUC-KR in an answer that says GBK is not given back as Chinese characters that write back to it',
    async () => {
      const value = '비밀번호확인';
      await createSecret('hangul', value);
      up.handle((req, res) => {
        res.setHeader('content-type', 'text/plain; charset=gbk');
        res.end(
          Buffer.concat([iconv.encode('答案: ', 'gbk'), iconv.encode(String(JSON.parse(req.body).pw), 'euc-kr')]),
        );
      });
      const res = await sendInBody('hangul', '/store');
      // Read as GBK the EUC-KR bytes are other characters, which GBK writes back to the value's bytes.
      expect(iconv.encode(res.body.response.body, 'gbk').includes(iconv.encode(value, 'euc-kr'))).toBe(false);
      expect(res.body.response.body).toBe(
        Buffer.concat([iconv.encode('答案: ', 'gbk'), iconv.encode(value, 'euc-kr')]).toString('utf8'),
      );
    },
  );

  it.runIf(available).each(CJK_ECHOES)(
    'an ASCII value in an answer in %s is redacted, the rest of the answer read as before or, declared, as its text',
    async (charset, _value, greeting) => {
      for (const declared of [true, false]) {
        const res = await echo('mixed', (bytes, r) => {
          r.setHeader('content-type', declared ? `text/plain; charset=${charset}` : 'text/plain');
          r.end(Buffer.concat([iconv.encode(`${greeting}: `, charset), bytes, iconv.encode('。', charset)]));
        });
        expect(up.received.at(-1)?.headers['x-k']).toBe(MIXED);
        const around = declared
          ? [`${greeting}: `, '。']
          : [iconv.encode(`${greeting}: `, charset).toString('utf8'), iconv.encode('。', charset).toString('utf8')];
        expect(res.body.response.body, `${charset}, declared: ${declared}`).toBe(
          `${around[0]}[secret:mixed]${around[1]}`,
        );
        expectUnreadable(res.text, MIXED);
      }
    },
  );

  it.runIf(available)('a value echoed as a response header name (lower-cased on the way) is redacted', async () => {
    const res = await echo('mixed', (bytes, r) => {
      r.setHeader(`x-meta-${bytes.toString('latin1')}`, 'stored');
      r.setHeader(`${bytes.toString('latin1')}`, 'alone');
      r.end('ok');
    });
    const names = Object.keys(res.body.response.headers);
    expect(names).toContain('x-meta-[secret:mixed]');
    expect(names).toContain('[secret:mixed]');
    expectUnreadable(res.text, MIXED);
  });
});

/**
 * `text` in a single-byte charset, by inverting what TextDecoder reads each
 * byte as — but windows-1252's €, which Node 20's decoder reads as a control.
 */
function encodeSingleByte(text: string, charset: string): Buffer {
  const decoder = new TextDecoder(charset);
  const byChar = new Map<string, number>();
  for (let b = 0; b < 256; b++) byChar.set(decoder.decode(Uint8Array.of(b)), b);
  if (charset === 'windows-1252') byChar.set('€', 0x80);
  return Buffer.from([...text].map((c) => byChar.get(c) ?? 0x3f));
}

/** `text` in ISO-2022-JP as the WHATWG encoder writes it (JIS X 0208 from EUC-JP, less the high bit). */
function iso2022Jp(text: string): Buffer {
  const out: number[] = [];
  let jis = false;
  for (const c of text) {
    const euc = iconv.encode(c, 'euc-jp');
    if (euc.length === 1) {
      if (jis) out.push(0x1b, 0x28, 0x42);
      jis = false;
      out.push(euc[0] as number);
    } else {
      if (!jis) out.push(0x1b, 0x24, 0x42);
      jis = true;
      out.push((euc[0] as number) & 0x7f, (euc[1] as number) & 0x7f);
    }
  }
  if (jis) out.push(0x1b, 0x28, 0x42);
  const bytes = Buffer.from(out);
  if (new TextDecoder('iso-2022-jp').decode(bytes) !== text) throw new Error(`not ISO-2022-JP: ${text}`);
  return bytes;
}
