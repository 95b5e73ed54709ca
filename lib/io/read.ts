/** Reading input files with errors that name the file. */
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
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

/**
 * Where `bytes` stop being UTF-8: the offset of the first byte that does not
 * start or continue a well-formed sequence (overlong forms, surrogates and
 * code points past U+10FFFF are ill-formed, as in the Unicode standard), or
 * −1 when all of it is UTF-8.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    // Length of the sequence and the range of its second byte (Unicode table 3-7).
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + 1 >= n || bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (i + k >= n || (bytes[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return -1;
}

/**
 * Refuses text files that are not UTF-8, naming the file, the line (counting
 * CRLF, LF and lone CR endings) and the byte: decoding them anyway would turn
 * every non-ASCII byte into U+FFFD, so `Müller` and `Mäller` would become
 * one category without a word. A UTF-16 file is named as such. `fail`
 * makes the error (a DataError by default).
 */
export function checkUtf8(bytes: Uint8Array, file: string, fail: (message: string) => Error = (m) => new DataError(m)): void {
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    throw fail(`${file} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8`);
  }
  if (isUtf8(bytes)) return;
  const at = firstInvalidUtf8(bytes);
  if (at < 0) return;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < at; i++) {
    const b = bytes[i];
    if (b === 0x0a || (b === 0x0d && bytes[i + 1] !== 0x0a)) {
      line++;
      lineStart = i + 1;
    }
  }
  const hex = Array.from(bytes.subarray(at, Math.min(at + 4, bytes.length)), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw fail(
    `${file}: line ${line} is not UTF-8 text (bytes ${hex} at byte ${at - lineStart + 1} of the line, offset ${at} in the file); `
    + 'save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 in.csv > out.csv`, with the encoding it was written in)',
  );
}

/** A UTF-8 text file's contents; `Cannot read …` or checkUtf8's DataError on failure. */
export async function readTextFile(file: string): Promise<string> {
  const bytes = await readInputFile(file);
  checkUtf8(bytes, file);
  return bytes.toString('utf8');
}
