/**
 * A value with characters outside ASCII, written by an upstream in a
 * multi-byte charset (Shift_JIS, EUC-JP, GBK, GB18030, Big5, EUC-KR,
 * ISO-2022-JP) and read as UTF-8 — as Hush reads an answer that declares no
 * charset it can read back: its CJK characters turn into runs of U+FFFD
 * (and stray ASCII from second bytes), its ASCII part stays as it was. The
 * redactor must match exactly that reading, whatever the bytes around the
 * value, or the ASCII part — most of a value like `パスワード-2024-abcdef` —
 * reaches the caller.
 */
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { Redactor } from './redactor.js';
import { secretForms } from './secret-forms.js';

const JAPANESE = 'パスワード-2024-abcdef';
const MARK = '[secret:k]';
const MULTI_BYTE = ['shift_jis', 'euc-jp', 'gbk', 'gb18030', 'big5', 'euc-kr'] as const;
const ESC = String.fromCharCode(0x1b);

/** `text` in a charset, as an upstream writes it: iconv-lite's encoders, and ISO-2022-JP by hand. */
function encode(text: string, charset: string): Buffer {
  return charset === 'iso-2022-jp' ? Buffer.from(iso2022JpOf(text) as string, 'latin1') : iconv.encode(text, charset);
}

/** Whether a charset writes `c` (iconv-lite writes "?" for a character it has no code for). */
function writes(charset: string, c: string): boolean {
  if (charset === 'iso-2022-jp') return iso2022JpOf(c) !== null;
  return c === '?' || iconv.encode(c, charset).toString('latin1') !== '?';
}

/**
 * A whole text in ISO-2022-JP as the WHATWG encoder writes it (its state
 * carried from character to character), or null when one needs more than
 * ASCII and JIS X 0208.
 */
function iso2022JpOf(text: string): string | null {
  let out = '';
  let jis = false;
  for (const c of text) {
    if (c.charCodeAt(0) < 0x80) {
      out += (jis ? `${ESC}(B` : '') + c;
      jis = false;
      continue;
    }
    const euc = iconv.encode(c, 'euc-jp');
    if (c === '¥' || c === '‾' || euc.length !== 2 || (euc[0] as number) < 0xa1 || (euc[1] as number) < 0xa1)
      return null;
    out += (jis ? '' : `${ESC}$B`) + String.fromCharCode((euc[0] as number) & 0x7f, (euc[1] as number) & 0x7f);
    jis = true;
  }
  return jis ? `${out}${ESC}(B` : out;
}

/** The value's runs of ASCII characters of 4 or more (what a reader could use), each. */
function asciiRuns(value: string): string[] {
  return value.split(/[^\x20-\x7e]+/).filter((run) => run.length >= 4);
}

describe('the mis-decoded forms of a value in a multi-byte charset', () => {
  it.each([...MULTI_BYTE, 'iso-2022-jp'])(
    '%s bytes read as UTF-8 are a form, and the redactor replaces them whole',
    (charset) => {
      const value = charset === 'euc-kr' ? '비밀번호-2024-abcdef' : JAPANESE;
      const misread = encode(value, charset).toString('utf8');
      // What the caller would otherwise have seen: the CJK part unreadable, the ASCII part as it was.
      expect(misread).toContain('-2024-abcdef');
      expect(secretForms(value)).toContain(misread);
      const redactor = new Redactor([{ name: 'k', value }]);
      expect(redactor.redact(`got: ${misread}.`)).toBe(`got: ${MARK}.`);
      // Its CJK characters alone read as (nearly) nothing but U+FFFD: no form, it would mark stray
      // bytes of unrelated answers and tell the value's length.
      const cjkOnly = value.replace('-2024-abcdef', '');
      const cjkMisread = encode(cjkOnly, charset).toString('utf8');
      if (cjkMisread.replace(/\ufffd/g, '').length < 4) expect(secretForms(cjkOnly)).not.toContain(cjkMisread);
    },
  );

  it('Shift_JIS: exactly the reading Buffer#toString gives, U+FFFD for each byte that starts no UTF-8 character', () => {
    // パ ス ワ ー ド are 83 70, 83 58, 83 8F, 81 5B, 83 68: 0x83, 0x8F and 0x81 continue no sequence.
    expect(encode(JAPANESE, 'shift_jis').toString('utf8')).toBe('\ufffdp\ufffdX\ufffd\ufffd\ufffd[\ufffdh-2024-abcdef');
    expect(secretForms(JAPANESE)).toContain('\ufffdp\ufffdX\ufffd\ufffd\ufffd[\ufffdh-2024-abcdef');
  });

  it('ISO-2022-JP (seven bits: it reads as ASCII) is caught with or without its switch into JIS X 0208', () => {
    const jis = iso2022JpOf(JAPANESE) as string;
    expect(jis).toBe(`${ESC}$B%Q%9%o!<%I${ESC}(B-2024-abcdef`);
    expect(new TextDecoder('iso-2022-jp').decode(Buffer.from(jis, 'latin1'))).toBe(JAPANESE);
    const redactor = new Redactor([{ name: 'k', value: JAPANESE }]);
    expect(redactor.redact(`you sent ${jis}`)).toBe(`you sent ${MARK}`);
    // Text before it in JIS X 0208 already (東京): no switch in front of the value.
    const after = iso2022JpOf(`東京${JAPANESE}`) as string;
    expect(after).toBe(`${ESC}$BEl5~%Q%9%o!<%I${ESC}(B-2024-abcdef`);
    expect(redactor.redact(after)).toBe(`${ESC}$BEl5~${MARK}`);
  });

  it('after a byte that starts a UTF-8 sequence, which takes the value first byte into its character', () => {
    const redactor = new Redactor([{ name: 'k', value: JAPANESE }]);
    // は is 82 CD in Shift_JIS: 0xCD starts a two-byte UTF-8 sequence, 0x83 (パ's first byte) ends it.
    const text = encode(`こんには${JAPANESE}`, 'shift_jis').toString('utf8');
    expect(text).toContain('\u0343p');
    const redacted = redactor.redact(text);
    expect(redacted).toContain(MARK);
    expect(redacted).not.toContain('2024-abcdef');
  });

  it('a value ending in an unfinished UTF-8 sequence is caught whatever byte follows it', () => {
    // 中 is D6 D0 in GBK: read as UTF-8, D0 starts a two-byte sequence the next byte may finish.
    const value = 'key-2024-abcdef中';
    const bytes = encode(value, 'gbk');
    expect(bytes.subarray(-2)).toEqual(Buffer.from([0xd6, 0xd0]));
    const redactor = new Redactor([{ name: 'k', value }]);
    for (const after of [[0x80], [0x80, 0x80], [0x41], []]) {
      const redacted = redactor.redact(Buffer.concat([bytes, Buffer.from(after)]).toString('utf8'));
      expect(redacted, `followed by ${after}`).toContain(MARK);
      expect(redacted).not.toContain('2024-abcdef');
    }
  });

  it('a charset that cannot write one of the characters gives no form (iconv-lite would write "?")', () => {
    // ー (U+30FC) has no EUC-KR code: the reading with "?" is no form of the value, the others are.
    const misread = iconv.encode(JAPANESE, 'euc-kr').toString('utf8');
    expect(misread).toContain('?');
    const forms = secretForms(JAPANESE);
    expect(forms).not.toContain(misread);
    expect(forms).toContain(iconv.encode(JAPANESE, 'euc-jp').toString('utf8'));
  });

  it.each([...MULTI_BYTE, 'iso-2022-jp', 'windows-1251', 'windows-1252'])(
    '%s: for any value with non-ASCII characters in any surrounding text, no ASCII part of 4+ characters survives (property)',
    (charset) => {
      // Text around it: CJK and punctuation the charset writes, no letter or digit (the value's ASCII).
      const around = fc
        .array(
          fc.constantFrom(...[...'あア漢字中文密码한국어ー。「」、дяЖüß€ .,:!\n'].filter((c) => writes(charset, c))),
          {
            maxLength: 12,
          },
        )
        .map((cs) => cs.join(''));
      const cjk = [...'パスワード秘密鍵暗号中文密碼码한국비밀번호ｶпарольЇвüÖé€'].filter((c) => writes(charset, c));
      const value = fc
        .array(fc.oneof(fc.constantFrom(...cjk), fc.stringMatching(/^[a-z0-9-]{1,10}$/)), {
          minLength: 1,
          maxLength: 6,
        })
        .map((parts) => parts.join(''))
        .filter((v) => /[\u0080-\uffff]/.test(v));
      fc.assert(
        fc.property(around, value, around, (before, v, after) => {
          const redactor = new Redactor([{ name: 'k', value: v }]);
          const text = encode(`${before}${v}${after}`, charset).toString('utf8');
          const redacted = redactor.redact(text);
          const runs = asciiRuns(v);
          if (runs.length > 0) expect(redacted).toContain(MARK);
          for (const run of runs) expect(redacted).not.toContain(run);
        }),
        { numRuns: 300 },
      );
    },
  );
});
