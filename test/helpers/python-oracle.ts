import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Runs a committed Python oracle script on `{ cases }`: the script reads
 * DIR/input.json and prints one JSON object. Returns that object, or null
 * when /usr/bin/python3 or the script's libraries are missing (the script
 * exits 3 then); any other failure throws with the script's stderr.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function runPythonOracle(script: string, cases: object[]): Record<string, any> | null {
  if (!fs.existsSync('/usr/bin/python3')) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tabsight-${path.basename(script, '.py')}-`));
  try {
    fs.writeFileSync(path.join(dir, 'input.json'), JSON.stringify({ cases }));
    const r = spawnSync('/usr/bin/python3', [script, dir], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status === 3) return null;
    if (r.status !== 0) throw new Error(`oracle ${path.basename(script)} failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
