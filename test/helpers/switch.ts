// The process-wide native switches (_fusedBnRelu, _winograd): each reads its
// environment variable once, and its setter returns the previous value.
import { type Test } from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { _native } from '../../lib/index';

/** Checks that `variable`=0 turns switch `name` off in a fresh process, unset leaves it on, and the setter round-trips. */
export function checkSwitch(t: Test, name: string, variable: string) {
  const code = `console.log(require('.')._native().${name}())`;
  const run = (value: string) => spawnSync(process.execPath, ['-e', code], { cwd: path.join(__dirname, '..', '..'), env: { ...process.env, [variable]: value }, encoding: 'utf8' });
  const off = run('0');
  t.equal(off.stdout.trim().split('\n').pop(), 'false', `${variable}=0: ${off.stderr}`);
  const on = run('');
  t.equal(on.stdout.trim().split('\n').pop(), 'true', `${variable} empty: ${on.stderr}`);
  const native = _native();
  const before = native[name](false);
  t.equal(native[name](), false, `${name}(false) switches it off`);
  native[name](before);
  t.equal(native[name](), before, `${name}(before) restores it`);
}
