/**
 * PNG images → 8-bit CHW arrays, decoded with sharp.
 */
import sharp from 'sharp';
import { DataError } from '../errors';
import { string, plainObject, knownKeys, invalid } from '../validate';
import { readInputFile } from '../io/read';
import { crc32 } from '../io/safetensors';

export interface ReadPngOptions {
  /**
   * Channels of the result: 1 converts to greyscale (luminance), 3 to sRGB.
   * An alpha channel is always dropped (not composited).
   * @default 1 for a greyscale PNG, 3 otherwise
   */
  channels?: 1 | 3;
}

export interface PngImage {
  /** 8-bit values in CHW order: all of channel 0, then channel 1, … */
  data: Uint8Array;
  /** `[C, H, W]`. */
  shape: [number, number, number];
  /**
   * Bit depth stored in the file (IHDR: 1, 2, 4, 8 or 16). 16-bit PNGs are
   * scaled down to 8 bits by v >> 8; a 16-bit grey PNG read as one channel
   * whose sBIT chunk gives b significant bits (8 ≤ b < 16) by v >> (b − 8).
   */
  bitDepth: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function checkOptions(opts: unknown): { channels?: 1 | 3 } {
  if (opts === undefined) return {};
  const o = plainObject(opts, 'options');
  knownKeys(o, 'options', ['channels']);
  if (o.channels !== undefined && o.channels !== 1 && o.channels !== 3) throw invalid('1 or 3', 'channels', o.channels);
  return { channels: o.channels as 1 | 3 | undefined };
}

/** The grey sample's significant bits from a grey or grey+alpha PNG's sBIT chunk (before IDAT), if any. */
function significantGreyBits(buf: Buffer): number | undefined {
  for (let at = 8; at + 8 <= buf.length;) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT' || type === 'IEND') return undefined;
    if (type === 'sBIT' && length >= 1 && at + 9 <= buf.length) return buf[at + 8];
    at += 12 + length;
  }
  return undefined;
}

/**
 * Walks the chunks up to IEND and checks each one's CRC-32. libpng decodes a
 * file whose last chunk is cut off without complaint, and libvips accepts a
 * damaged IHDR (its dimensions included) or ancillary chunk; a damaged IDAT
 * is often caught only by chance. The CRCs make any damaged byte an error.
 */
function checkChunks(buf: Buffer, file: string): void {
  let at = SIGNATURE.length;
  for (;;) {
    if (at + 12 > buf.length) throw new DataError(`${file} is truncated: it has no IEND chunk (${buf.length} bytes)`);
    const length = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (length > 0x7fffffff || at + 12 + length > buf.length) {
      throw new DataError(`${file} is truncated: chunk ${JSON.stringify(type)} at byte ${at} declares ${length} bytes, past the end of the file (${buf.length} bytes)`);
    }
    const stored = buf.readUInt32BE(at + 8 + length);
    const computed = crc32(buf.subarray(at + 4, at + 8 + length));
    if (stored !== computed) {
      throw new DataError(`${file} is damaged: chunk ${JSON.stringify(type)} at byte ${at} fails its CRC (stored ${hex32(stored)}, computed ${hex32(computed)})`);
    }
    if (type === 'IEND') return;
    at += 12 + length;
  }
}

const hex32 = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

/** Reads a PNG file into a `[C, H, W]` Uint8Array. */
/** The largest PNG decoded, in pixels (8192×8192): the header is checked before anything is decoded. */
export const PNG_MAX_PIXELS = 8192 * 8192;

export async function readPng(file: string, opts?: ReadPngOptions): Promise<PngImage> {
  string(file, 'path');
  const o = checkOptions(opts);
  const buf = await readInputFile(file);
  if (buf.length < SIGNATURE.length || !buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw new DataError(`${file} is not a PNG file (no PNG signature)`);
  }
  checkChunks(buf, file);
  try {
    const meta = await sharp(buf, { failOn: 'truncated' }).metadata();
    // From the header: a 250 KB PNG can declare 16000×16000 pixels, 1.6 GB once decoded.
    if ((meta.width ?? 0) * (meta.height ?? 0) > PNG_MAX_PIXELS) {
      throw new DataError(`${file} is ${meta.width}×${meta.height} pixels, more than the ${PNG_MAX_PIXELS} (8192×8192) tabsight decodes`);
    }
    const grey = meta.channels === 1 || meta.channels === 2 || meta.space === 'b-w' || meta.space === 'grey16';
    const channels = o.channels ?? (grey ? 1 : 3);
    const wide = meta.depth === 'ushort';
    let img = sharp(buf, { failOn: 'truncated' });
    // A grey source read as one channel takes its grey values as stored.
    // libvips' b-w conversion of 16-bit grey goes through a gamma round trip
    // that maps 16-bit codes to 8 bits unevenly (one 8-bit level took 145
    // codes, another 460); here 16 bits become 8 by v >> 8, as the
    // 3-channel path does.
    const direct = channels === 1 && grey && (meta.channels === 1 || meta.channels === 2);
    if (direct) img = img.extractChannel(0).toColourspace(wide ? 'grey16' : 'b-w');
    else img = img.removeAlpha().toColourspace(channels === 1 ? 'b-w' : 'srgb');
    const raw = await img.raw({ depth: direct && wide ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
    const info = raw.info;
    let data: Uint8Array = raw.data;
    if (direct && wide) {
      // An sBIT chunk saying fewer significant bits (12-bit MR saved as
      // 16-bit PNG) keeps the top 8 of those; without it 0..4095 would
      // become only 16 grey levels.
      const bits = significantGreyBits(buf) ?? 16;
      const v16 = new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.length / 2);
      data = bits >= 8 && bits < 16 ? Uint8Array.from(v16, (v) => Math.min(255, v >> (bits - 8))) : Uint8Array.from(v16, (v) => v >> 8);
    }
    const { width: w, height: h } = info;
    if (info.channels !== channels || data.length !== w * h * channels) {
      throw new DataError(`${file}: decoding gave ${info.channels} channel(s) of ${w}×${h}, expected ${channels}`);
    }
    // HWC (interleaved) → CHW (planar).
    const out = new Uint8Array(channels * h * w);
    if (channels === 1) out.set(data);
    else {
      const plane = h * w;
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < channels; c++) out[c * plane + p] = data[p * channels + c];
      }
    }
    return { data: out, shape: [channels, h, w], bitDepth: buf[24] };
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${file} is a corrupt or truncated PNG: ${(err as Error).message.trim()}`, { cause: err });
  }
}
