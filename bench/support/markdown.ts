/** Small Markdown helpers for the report. */

export type Align = 'left' | 'right' | 'center';

export function table(headers: string[], rows: (string | number)[][], align: Align[] = []): string {
  const sep = headers.map((_, i) => {
    const a = align[i] ?? 'left';
    return a === 'right' ? '---:' : a === 'center' ? ':---:' : '---';
  });
  const line = (cells: (string | number)[]) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(headers), `| ${sep.join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** A latency in ms with sensible precision. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

/** An integer count with thin grouping (12 345). */
export function count(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.round(value).toLocaleString('en-US');
}

/** 1000 → "1k", 100000 → "100k". */
export function sizeLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

export function codeBlock(text: string, lang = ''): string {
  return `\`\`\`${lang}\n${text.trimEnd()}\n\`\`\``;
}

/**
 * The exact command of this run and the one that refreshes only `scenario`,
 * as Markdown list items for a scenario's method.
 */
export function commandLines(scenario: string): string[] {
  const args = process.argv.slice(2).join(' ');
  return [
    `- Command of this run: \`npx tsx bench/run.ts${args ? ` ${args}` : ''}\` (same as \`npm run bench${args ? ` -- ${args}` : ''}\`).`,
    `- This section alone: \`npx tsx bench/run.ts ${scenario}\`.`,
  ];
}
