import * as path from 'node:path';
import { runPythonOracle } from './python-oracle';

const ORACLE = path.join(__dirname, '..', 'fixtures', 'metrics_oracle.py');

/** Runs the committed scikit-learn oracle; null when python3/sklearn are missing (exit 3). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function runMetricsOracle(cases: object[]): Record<string, any> | null {
  return runPythonOracle(ORACLE, cases)?.results ?? null;
}

/** The error that fn throws (fails the test when it does not throw). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function errorOf(fn: () => unknown): any {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}
