/**
 * Prints one plain closing line, "N passed, N failed, N skipped", after the
 * run, so tools that read a test run's last lines can count it. A suite or
 * file that failed outside its tests (a hook, an import) leaves its tests
 * skipped: it counts as one failure, as does an unhandled error.
 */
import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError> = [],
    _reason?: TestRunEndReason,
  ): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const mod of testModules) {
      let failedTests = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failedTests += 1;
        else skipped += 1;
      }
      let failedSuites = 0;
      for (const suite of mod.children.allSuites()) {
        if (suite.state() !== 'failed') continue;
        const testFailed = [...suite.children.allTests()].some((t) => t.result().state === 'failed');
        if (!testFailed) failedSuites += 1;
      }
      const moduleOnly = mod.state() === 'failed' && failedTests === 0 && failedSuites === 0 ? 1 : 0;
      failed += failedTests + failedSuites + moduleOnly;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
