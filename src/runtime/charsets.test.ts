/**
 * Charsets other than UTF-8 (charsets.ts): which multi-byte labels Hush can
 * read an answer in and write back to the same bytes, and how a value is
 * written in them.
 */
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { encodeMultiByte, iso2022Jp, multiByte } from './charsets.js';

const ESC = String.fromCharCode(0x1b);

describe('multi-byte charsets', () => {
  it('a label Node.js reads and iconv-lite writes names its WHATWG encoding; UTF-8, single-byte, ISO-2022-JP and unknown labels none', () => {
    expect(multiByte('shift_jis')?.name).toBe('shift_jis');
    expect(multiByte('x-sjis')?.name).toBe('shift_jis');
    expect(multiByte('gb2312')?.name).toBe('gbk');
    expect(multiByte('utf-16')?.name).toBe('utf-16le');
    expect(multiByte('ks_c_5601-1987')?.name).toBe('euc-kr');
    for (const label of ['utf-8', 'utf8', 'windows-1251', 'iso-8859-1', 'iso-2022-jp', 'x-unknown', 'hz-gb-2312'])
      expect(multiByte(label), label).toBeNull();
  });

  it('reads a text and writes it back to the same bytes, a byte order mark included', () => {
    const sjis = multiByte('shift_jis');
    const text = 'こんにちは、世界。ｶﾀｶﾅ';
    const bytes = iconv.encode(text, 'shift_jis');
    expect(sjis?.decode(bytes)).toBe(text);
    expect(sjis?.encode(text).equals(bytes)).toBe(true);
    const utf16 = multiByte('utf-16le');
    const withBom = Buffer.from('\ufeffhello 世界', 'utf16le');
    expect(utf16?.encode(utf16.decode(withBom)).equals(withBom)).toBe(true);
  });

  it('a value in a charset: null when the charset has no code for one of its characters, a "?" of its own kept', () => {
    expect(encodeMultiByte('shift_jis', 'パスワード-2024')?.toString('hex')).toBe('83708358838f815b83682d32303234');
    expect(encodeMultiByte('euc-kr', 'パスワード')).toBeNull(); // ー (U+30FC) has no EUC-KR code
    expect(encodeMultiByte('gbk', '龦')).toBeNull();
    expect(encodeMultiByte('gb18030', '龦')?.length).toBe(4);
    expect(encodeMultiByte('shift_jis', 'パス?')?.toString('hex')).toBe('837083583f');
  });

  it('a value in ISO-2022-JP as the WHATWG encoder writes it, or null past JIS X 0208', () => {
    for (const text of ['パスワード-2024-abcdef', 'abc', '東京', 'a東b京c'])
      expect(new TextDecoder('iso-2022-jp').decode(Buffer.from(iso2022Jp(text) as string, 'latin1'))).toBe(text);
    expect(iso2022Jp('パスワード-2024')).toBe(`${ESC}$B%Q%9%o!<%I${ESC}(B-2024`);
    expect(iso2022Jp('abc')).toBe('abc');
    for (const text of ['ｶﾀｶﾅ', '¥100', '😀', '龦']) expect(iso2022Jp(text), text).toBeNull();
  });
});
