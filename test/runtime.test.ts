import t from 'tap';
import * as os from 'node:os';
import { _native } from '../lib/index';
import { ConfigError, callNative } from '../lib/errors';

t.test('runtime#threads is set from the core count on load', async (t) => {
  const info = _native().runtimeInfo();
  const expected = process.env.TABSIGHT_THREADS ? Number(process.env.TABSIGHT_THREADS) : os.availableParallelism();
  t.equal(info.threads, expected);
  t.match(info.torchVersion, /^\d+\.\d+/);
});

t.test('runtime#setThreads rejects a non-positive count with ERR_CONFIG', async (t) => {
  t.throws(() => callNative(() => _native().setThreads(0)), ConfigError);
  const err = (() => { try { callNative(() => _native().setThreads(-3)); } catch (e) { return e; } })() as ConfigError;
  t.equal(err.code, 'ERR_CONFIG');
});
