/**
 * The code benchmarks measure is the code users run: src/ compiled by tsc
 * with the production tsconfig (tsconfig.build.json, as `npm run build`
 * does), once per benchmark run, into node_modules/.cache/hush-bench/dist.
 *
 * The benchmark harness itself runs under tsx, whose on-the-fly transform
 * keeps function names by wrapping every closure it creates in a helper
 * call (`__name(fn, "fn")`, an Object.defineProperty per closure); compiled
 * files loaded from the cache are left alone. In-process scenarios import
 * Hush through `compiled()`, `hush serve` processes start the same build.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { progress } from './progress.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BUILD_DIR = path.join(ROOT, 'node_modules', '.cache', 'hush-bench', 'dist');

let built: Promise<{ entry: string; seconds: number }> | undefined;

/** Compiles src/ once per run (tsc -p tsconfig.build.json into the cache dir); the CLI entry point. */
export function buildHush(): Promise<{ entry: string; seconds: number }> {
  built ??= (async () => {
    const t0 = performance.now();
    rmSync(BUILD_DIR, { recursive: true, force: true });
    const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
    const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(tsc, ['-p', 'tsconfig.build.json', '--outDir', BUILD_DIR, '--sourceMap', 'false'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, output }));
    });
    const entry = path.join(BUILD_DIR, 'cli', 'hush.js');
    if (!existsSync(entry)) throw new Error(`compiling src/ produced no ${entry}:\n${result.output}`);
    // tsc emits despite type errors (src/ may be mid-edit by someone else): say so, run anyway.
    if (result.code !== 0) progress(`NOTICE: tsc reported errors compiling src/; running what it emitted`);
    const seconds = (performance.now() - t0) / 1000;
    progress(`compiled src/ in ${seconds.toFixed(1)} s (${path.relative(ROOT, BUILD_DIR)})`);
    return { entry, seconds };
  })();
  return built;
}

/**
 * A module of src/ as compiled, e.g. `compiled<typeof import('../src/runtime/redactor.js')>('runtime/redactor.js')`.
 * Every caller of one module gets the same instance.
 */
export async function compiled<M>(module: string): Promise<M> {
  await buildHush();
  return (await import(pathToFileURL(path.join(BUILD_DIR, module)).href)) as M;
}

/** The src/ file a compiled file came from (dist/x/y.js → src/x/y.ts), or null when it is not one. */
export function sourceOfCompiled(file: string): string | null {
  if (!file.startsWith(BUILD_DIR + path.sep)) return null;
  return path.join(ROOT, 'src', file.slice(BUILD_DIR.length + 1).replace(/\.js$/, '.ts'));
}
