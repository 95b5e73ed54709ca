/**
 * Atomic file writes: a temporary file in the same folder is written,
 * flushed and renamed over the target, so readers see the old file or the
 * new one, never half of one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, DataError, TabsightError } from '../errors';

const liveTemps = new Set<string>();
const exitCleanups = new Set<() => void>();
let exitHook = false;

function hookExit(): void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', removeLiveTemps);
  }
}

/**
 * Registers a temporary file or folder to be removed if the process exits
 * before the caller removes or renames it (process.exit, or the CLI's signal
 * handling, which calls removeLiveTemps before dying of SIGINT or SIGTERM);
 * returns the function that unregisters it. A SIGKILL runs no JS and cannot
 * be covered.
 */
export function removeAtExit(p: string): () => void {
  hookExit();
  liveTemps.add(p);
  return () => void liveTemps.delete(p);
}

/**
 * Registers a synchronous clean-up to run where removeAtExit's files are
 * removed (exit, or the CLI dying of a signal): for temporary files whose
 * names only native code knows (the trainer's checkpoint writes). Returns
 * the function that unregisters it.
 */
export function cleanUpAtExit(fn: () => void): () => void {
  hookExit();
  exitCleanups.add(fn);
  return () => void exitCleanups.delete(fn);
}

/** Removes every temporary file or folder registered with removeAtExit (synchronously; for exit and signal paths). */
export function removeLiveTemps(): void {
  for (const t of liveTemps) {
    try {
      fs.rmSync(t, { recursive: true, force: true });
    } catch {
      // best effort: the process is ending
    }
  }
  liveTemps.clear();
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // best effort: the process is ending
    }
  }
  exitCleanups.clear();
}

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Why writing `file` failed, for a message: the folder is missing or not a folder, `file` is a folder, else the system's message. */
export function writeReason(err: unknown, file: string): string {
  const e = err as NodeJS.ErrnoException | undefined;
  const dir = path.dirname(path.resolve(file));
  if (e?.code === 'ENOENT') return `its folder ${dir} does not exist`;
  if (e?.code === 'ENOTDIR') return `${dir} is not a folder (or a part of its path is a file)`;
  if (e?.code === 'EISDIR') return 'it is a folder';
  if (e?.code === 'EEXIST') return 'a file is in the way';
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return `permission denied (${e.syscall ?? 'write'} ${e.path ?? dir})`;
  return e && e.message ? e.message : String(err);
}

/** The error to rethrow for a failed write of `file`: coded errors as they are, others as a DataError naming the file. */
function writeError(err: unknown, file: string): Error {
  if (err instanceof TabsightError) return err;
  return new DataError(`Cannot write ${file}: ${writeReason(err, file)}`, { cause: err });
}

/**
 * `mkdir -p`: creates `dir` and its missing parents, one `mkdir` each, and
 * returns the first folder it created (as `fs.mkdirSync`'s recursive mode
 * does). Node's recursive mode loops forever where `mkdir` answers ENOENT
 * under a folder that exists (any path under /proc); here that ENOENT is
 * thrown. A file in the way is EEXIST (it is `dir`) or ENOTDIR (a parent).
 */
export function makeDirs(dir: string): string | undefined {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (st) {
      if (!st.isDirectory() && missing.length === 0) {
        throw Object.assign(new Error(`EEXIST: file already exists, mkdir '${p}'`), { code: 'EEXIST', path: p });
      }
      break; // a file here makes the first mkdir below fail with ENOTDIR
    }
    missing.push(p);
    if (path.dirname(p) === p) break;
  }
  missing.reverse();
  for (const p of missing) {
    try {
      fs.mkdirSync(p);
    } catch (err) {
      // Another process made it in between: fine if it is a folder.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(p).isDirectory()) throw err;
    }
  }
  return missing[0];
}

/**
 * Creates the output folder `dir` (and its parents) before any work; a
 * ConfigError naming the path when it cannot be (a file is in the way, no
 * permission). Returns the first folder it created, if any.
 */
export function ensureOutDir(dir: string): string | undefined {
  try {
    return makeDirs(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EEXIST' ? 'it is a file, not a folder' : e.code === 'ENOTDIR' ? 'a part of its path is a file'
      : e.code === 'ENOENT' ? 'the system refused to create it (ENOENT under an existing folder)' : e.message ?? String(err);
    throw new ConfigError(`Cannot use ${dir} as an output folder: ${why}`, { cause: err });
  }
}

/**
 * Checks, before any work, that the output file `file` can be written: its
 * folder exists, this process may create files in it (the write goes
 * through a temporary file there), and `file` is not a folder. A
 * ConfigError naming the path otherwise.
 */
export function checkOutFile(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let why: string | undefined;
  try {
    if (!fs.statSync(dir).isDirectory()) why = `${dir} is not a folder`;
    else if (fs.existsSync(file) && fs.statSync(file).isDirectory()) why = 'it is a folder';
    else fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    why = writeReason(err, file);
  }
  if (why) throw new ConfigError(`Cannot write the output file ${file}: ${why}`);
}

/**
 * A file written piece by piece into a temporary file next to it, then
 * flushed and renamed over `file` by commit(); abort() removes the
 * temporary file. Readers see the old file or the whole new one, and a
 * process that exits first (or dies of the CLI's signals) leaves no
 * temporary file behind (removeAtExit). Every failure is a DataError naming
 * `file`, and removes the temporary file.
 */
export class AtomicFile {
  readonly file: string;
  readonly #tmp: string;
  readonly #forget: () => void;
  #fh: fs.promises.FileHandle | undefined;
  #end = 0;

  private constructor(file: string, tmp: string, fh: fs.promises.FileHandle, forget: () => void) {
    this.file = file;
    this.#tmp = tmp;
    this.#fh = fh;
    this.#forget = forget;
  }

  /** Creates the temporary file (`tmp`, or a hidden name with the pid next to `file`). */
  static async open(file: string, opts: { tmp?: string } = {}): Promise<AtomicFile> {
    const tmp = opts.tmp ?? tempName(file);
    const forget = removeAtExit(tmp);
    try {
      return new AtomicFile(file, tmp, await fs.promises.open(tmp, 'wx'), forget);
    } catch (err) {
      forget();
      throw writeError(err, file);
    }
  }

  /** Writes `data` at `position`, or after the furthest byte written so far. */
  async write(data: string | Uint8Array, position?: number): Promise<void> {
    const fh = this.#fh;
    if (!fh) throw new DataError(`The writer for ${this.file} is closed`);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let at = position ?? this.#end;
    try {
      for (let done = 0; done < buf.length;) {
        const { bytesWritten } = await fh.write(buf, done, buf.length - done, at);
        if (bytesWritten <= 0) throw new Error(`the system wrote 0 of ${buf.length - done} bytes`);
        done += bytesWritten;
        at += bytesWritten;
      }
    } catch (err) {
      await this.abort();
      throw writeError(err, this.file);
    }
    this.#end = Math.max(this.#end, at);
  }

  /** Flushes the temporary file to disk and renames it over `file`. */
  async commit(): Promise<void> {
    const fh = this.#fh;
    if (!fh) throw new DataError(`The writer for ${this.file} is closed`);
    this.#fh = undefined;
    try {
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(this.#tmp, this.file);
    } catch (err) {
      await fs.promises.rm(this.#tmp, { force: true }).catch(() => undefined); // never masks the first error
      throw writeError(err, this.file);
    } finally {
      this.#forget();
    }
  }

  /** Removes the temporary file (a no-op after commit or abort). */
  async abort(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(this.#tmp, { force: true }).catch(() => undefined);
    this.#forget();
  }
}

/** Writes `data` (or its chunks, in order) to `file` atomically. */
export async function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const w = await AtomicFile.open(file);
  try {
    if (Array.isArray(data)) {
      for (const chunk of data as readonly Uint8Array[]) await w.write(chunk);
    } else {
      await w.write(data as string | Uint8Array);
    }
  } catch (err) {
    await w.abort();
    throw err;
  }
  await w.commit();
}

export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = tempName(file);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // never masks the first error
    }
    throw writeError(err, file);
  }
}
