/**
 * docs/PERFORMANCE.md as the bench runner writes it: a run of one scenario
 * replaces that scenario's section and keeps the rest, and the whole suite's
 * time (issue 7: under 10 minutes) is kept until the next whole run.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MachineInfo } from '../../bench/support/machine.js';
import { writePerformanceDoc } from '../../bench/support/report.js';

const machine: MachineInfo = {
  cpuModel: 'Test CPU',
  cores: 2,
  memoryGiB: 4,
  platform: 'Linux (x64)',
  node: 'v20',
  sqlite: '3.x',
  postgres: '15',
  date: '2026-11-27T10:00:00.000Z',
};

describe('PERFORMANCE.md sections', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the suite time and other scenarios when one scenario is rerun; marks a suite over budget', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'hush-report-'));
    const file = path.join(dir, 'PERFORMANCE.md');
    writePerformanceDoc(
      file,
      machine,
      [
        { id: 'alpha', title: 'Alpha', markdown: 'alpha v1' },
        { id: 'beta', title: 'Beta', markdown: 'beta v1' },
      ],
      {
        date: '2026-11-27',
        seconds: 581,
        scenarios: [
          { id: 'alpha', seconds: 300 },
          { id: 'beta', seconds: 280 },
        ],
      },
    );
    let doc = readFileSync(file, 'utf8');
    expect(doc).toContain('took **9 min 41 s** from the start of the bench process — within its budget of 10 minutes');
    expect(doc).toMatch(/\| alpha \| 300 \|/);
    expect(doc).toContain('(`npm run bench`, 2026-11-27, Test CPU × 2)');
    expect(doc.indexOf('## Whole suite')).toBeLessThan(doc.indexOf('## Method'));

    writePerformanceDoc(file, machine, [{ id: 'beta', title: 'Beta', markdown: 'beta v2' }]);
    doc = readFileSync(file, 'utf8');
    expect(doc).toContain('alpha v1');
    expect(doc).toContain('beta v2');
    expect(doc).not.toContain('beta v1');
    expect(doc).toContain('took **9 min 41 s**');
    // Written once, not also as a scenario section.
    expect(doc.split('<!-- bench:suite:start -->').length).toBe(2);
    expect(doc.indexOf('bench:suite:start')).toBeLessThan(doc.indexOf('## Scenarios'));

    writePerformanceDoc(file, machine, [], { date: '2026-11-28', seconds: 677, scenarios: [] });
    doc = readFileSync(file, 'utf8');
    expect(doc).toContain('took **11 min 17 s** from the start of the bench process — over its budget of 10 minutes');
    expect(doc).not.toContain('9 min 41 s');

    // Whole seconds, rounded down (599.6 s is within the budget: 9 min 59 s, not "9 min 60 s").
    writePerformanceDoc(path.join(dir, 'edge.md'), machine, [], { date: '2026-11-28', seconds: 599.6, scenarios: [] });
    expect(readFileSync(path.join(dir, 'edge.md'), 'utf8')).toContain(
      'took **9 min 59 s** from the start of the bench process — within',
    );
  });
});
