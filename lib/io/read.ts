/** Reading input files with errors that name the file. */
import { promises as fsp } from 'node:fs';
import { DataError } from '../errors';

/** Why a file operation failed, for a message: 'no such file', else the system's message. */
export function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e && e.code === 'ENOENT' ? 'no such file' : e && e.message ? e.message : String(err);
}

/** Reads a whole file; on failure a DataError `Cannot read FILE: why`. */
export async function readInputFile(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    throw new DataError(`Cannot read ${file}: ${ioReason(err)}`, { cause: err });
  }
}
