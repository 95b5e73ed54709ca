/** Reading input files with errors that name the file. */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
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

/** The SHA-256 of a file, hex; on failure a DataError `Cannot read FILE: why`. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (err) {
    throw new DataError(`Cannot read ${file}: ${ioReason(err)}`, { cause: err });
  }
  return hash.digest('hex');
}
