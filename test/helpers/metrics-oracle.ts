import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ORACLE = path.join(__dirname, '..', 'fixtures', 'metrics_oracle.py');

/** Runs the committed scikit-learn oracle; null when python3/sklearn are missing (exit 3). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function runMetricsOracle(cases: object[]): Record<string, any> | null {
  if (!fs.existsSync('/usr/bin/python3')) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-oracle-'));
  try {
    fs.writeFileSync(path.join(dir, 'input.json'), JSON.stringify({ cases }));
    const r = spawnSync('/usr/bin/python3', [ORACLE, dir], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status === 3) return null;
    if (r.status !== 0) throw new Error(`oracle failed: ${r.stderr}`);
    return JSON.parse(r.stdout).results;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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
