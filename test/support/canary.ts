/**
 * Canary values and every encoded form of them that a leak could take, and a
 * search of text and bytes for any of those forms.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** A value whose encoded forms all differ from the raw one. */
export function makeCanary(label: string): string {
  return `cnry-${label}-${randomBytes(12).toString('hex')}"é+ /x`;
}

export function canaryForms(value: string): Record<string, string> {
  const bytes = Buffer.from(value, 'utf8');
  return {
    raw: value,
    json: JSON.stringify(value).slice(1, -1),
    percent: encodeURIComponent(value),
    form: encodeURIComponent(value).replaceAll('%20', '+'),
    base64: bytes.toString('base64'),
    base64NoPad: bytes.toString('base64').replace(/=+$/, ''),
    base64url: bytes.toString('base64url'),
    hex: bytes.toString('hex'),
    HEX: bytes.toString('hex').toUpperCase(),
    // The random core alone: catches partial leaks (a truncated or re-encoded value).
    core: /cnry-[a-z0-9]+-[0-9a-f]{24}/.exec(value)?.[0] ?? value,
  };
}

export interface Hit {
  where: string;
  canary: string;
  form: string;
}

export class LeakSearch {
  readonly hits: Hit[] = [];
  searchedBytes = 0;
  places = 0;

  constructor(private readonly canaries: Record<string, string>) {}

  scan(where: string, content: string | Buffer): void {
    const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    this.searchedBytes += buf.length;
    this.places += 1;
    for (const [name, value] of Object.entries(this.canaries)) {
      for (const [form, text] of Object.entries(canaryForms(value))) {
        if (buf.includes(Buffer.from(text, 'utf8'))) this.hits.push({ where, canary: name, form });
      }
    }
  }

  scanDirectory(dir: string): string[] {
    const files: string[] = [];
    for (const entry of readdirSync(dir)) {
      const file = path.join(dir, entry);
      if (statSync(file).isDirectory()) files.push(...this.scanDirectory(file));
      else {
        this.scan(file, readFileSync(file));
        files.push(file);
      }
    }
    return files;
  }
}
