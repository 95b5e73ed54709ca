/** Argument parsers and helpers shared by the subcommands. */
import { InvalidArgumentError } from 'commander';
import { removeLiveTemps } from '../io/atomic';
import * as fs from 'node:fs';
import { TabsightError } from '../errors';
import { checkUtf8 } from '../io/read';

// Decimal only (1e4 included): Number() also takes "0x1", "0b11", "" and "  ", which no one means on a command line.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function int(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!DECIMAL.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`Expected an integer for ${name} but received "${value}"`);
    return n;
  };
}

export function float(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!DECIMAL.test(value.trim()) || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number for ${name} but received "${value}"`);
    return n;
  };
}

export function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Feature names from --features a,b or --features-file (one per line, # comments). */
export function featureList(features?: string[], file?: string): string[] | undefined {
  if (features && file) throw new TabsightError('ERR_CONFIG', 'Give --features or --features-file, not both');
  if (file) {
    let text: string;
    try {
      const bytes = fs.readFileSync(file);
      checkUtf8(bytes, `--features-file ${file}`, (m) => new TabsightError('ERR_CONFIG', m));
      text = bytes.toString('utf8');
    } catch (err) {
      if (err instanceof TabsightError) throw err;
      throw new TabsightError('ERR_CONFIG', `Cannot read --features-file ${file}: ${(err as Error).message}`);
    }
    const names = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
    if (names.length === 0) throw new TabsightError('ERR_CONFIG', `--features-file ${file} names no features`);
    return names;
  }
  return features;
}

const graceful = { SIGINT: 0, SIGTERM: 0 };

/**
 * Installs a command's own handler of SIGINT or SIGTERM (one that stops its
 * work cleanly); the CLI's fallback (index.ts) then leaves that signal to
 * it. Returns the function that removes it.
 */
export function onSignal(sig: 'SIGINT' | 'SIGTERM', handler: () => void): () => void {
  graceful[sig] += 1;
  process.on(sig, handler);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    graceful[sig] -= 1;
    process.off(sig, handler);
  };
}

/** Whether a command's own handler (onSignal) takes this signal. */
export function signalHandled(sig: 'SIGINT' | 'SIGTERM'): boolean {
  return graceful[sig] > 0;
}

/**
 * Ends the process now: removes the temporary files in flight, then dies of
 * `sig` as if no handler were installed. Not process.exit(), which waits for
 * native work running in the libuv pool (a whole training job) to finish.
 * Where the signal was ignored when Node started (a background job of a
 * script), the process goes on, as it would have without any handler.
 */
export function dieOfSignal(sig: 'SIGINT' | 'SIGTERM'): void {
  removeLiveTemps();
  process.removeAllListeners(sig);
  graceful[sig] = 0;
  process.kill(process.pid, sig);
}

/** An AbortSignal that fires on the first Ctrl-C; a second one quits at once (dieOfSignal). */
export function interruptSignal(unit = 'step'): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let count = 0;
  const onSigint = () => {
    count += 1;
    if (count === 1) {
      process.stderr.write(`\ntabsight: stopping after this ${unit} (Ctrl-C again to quit now)…\n`);
      controller.abort();
    } else {
      dieOfSignal('SIGINT');
    }
  };
  return { signal: controller.signal, dispose: onSignal('SIGINT', onSigint) };
}

/**
 * Ctrl-C as in interruptSignal, and SIGTERM (what SLURM sends at the time
 * limit and on scancel): both stop the work after this `unit`, so that
 * outputs are completed or removed, never left half-written.
 */
export function stopSignal(unit = 'step', onTermNote = ''): { signal: AbortSignal; dispose: () => void } {
  const sigint = interruptSignal(unit);
  const term = new AbortController();
  const onTerm = () => {
    process.stderr.write(`\ntabsight: SIGTERM, stopping after this ${unit}${onTermNote}…\n`);
    term.abort();
  };
  const offTerm = onSignal('SIGTERM', onTerm);
  return {
    signal: AbortSignal.any([sigint.signal, term.signal]),
    dispose: () => {
      sigint.dispose();
      offTerm();
    },
  };
}

/** Drops undefined values so they do not override config-file values. */
export function defined<T extends Record<string, unknown>>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
