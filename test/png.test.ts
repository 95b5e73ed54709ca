import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { PNG_MAX_PIXELS, readPng, ReadPngOptions } from '../lib/data/png';
import { ConfigError } from '../lib/errors';
import { expectDataError, rejection, tmpDir } from './fixtures/readers/oracle';

// A minimal PNG encoder (filter type 0 on every row), independent of sharp, as the oracle.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** Encodes HWC samples; colourType 0 grey, 2 RGB, 6 RGBA; bitDepth 8 or 16 (big-endian samples). */
function encodePng(w: number, h: number, colourType: 0 | 2 | 4 | 6, bitDepth: 8 | 16, samples: number[], sBit?: number[]): Buffer {
  const c = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  const bps = bitDepth / 8;
  const raw = Buffer.alloc(h * (1 + w * c * bps));
  let at = 0;
  for (let y = 0; y < h; y++) {
    raw[at++] = 0;
    for (let i = 0; i < w * c; i++) {
      const v = samples[y * w * c + i];
      if (bps === 1) raw[at++] = v;
      else (raw.writeUInt16BE(v, at), (at += 2));
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const extra = sBit ? [chunk('sBIT', Buffer.from(sBit))] : [];
  return Buffer.concat([sig, chunk('IHDR', ihdr), ...extra, chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
/** HWC → CHW, the layout readPng must return. */
function toCHW(hwc: number[], h: number, w: number, c: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < c; k++) for (let p = 0; p < h * w; p++) out.push(hwc[p * c + k]);
  return out;
}
const pattern = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 37 + seed * 11 + ((i * i) % 13)) % 256);

t.test('readPng returns RGB images in CHW order with exact values', async (t) => {
  const dir = tmpDir(t);
  const [w, h] = [5, 3];
  const hwc = pattern(w * h * 3, 1);
  const file = path.join(dir, 'rgb.png');
  fs.writeFileSync(file, encodePng(w, h, 2, 8, hwc));
  const img = await readPng(file);
  t.same(img.shape, [3, h, w]);
  t.type(img.data, Uint8Array);
  t.same(Array.from(img.data), toCHW(hwc, h, w, 3));
  t.equal(img.bitDepth, 8);
  // The same pixels written by sharp (a different encoder) decode the same.
  const viaSharp = path.join(dir, 'sharp.png');
  await sharp(Buffer.from(hwc), { raw: { width: w, height: h, channels: 3 } }).png().toFile(viaSharp);
  t.same(Array.from((await readPng(viaSharp)).data), toCHW(hwc, h, w, 3));
});

t.test('readPng reads greyscale as one channel and converts between 1 and 3 channels on request', async (t) => {
  const dir = tmpDir(t);
  const [w, h] = [4, 6];
  const grey = pattern(w * h, 2);
  const file = path.join(dir, 'grey.png');
  fs.writeFileSync(file, encodePng(w, h, 0, 8, grey));
  const one = await readPng(file);
  t.same(one.shape, [1, h, w]);
  t.same(Array.from(one.data), grey);
  const three = await readPng(file, { channels: 3 });
  t.same(three.shape, [3, h, w]);
  for (let c = 0; c < 3; c++) t.same(Array.from(three.data.subarray(c * w * h, (c + 1) * w * h)), grey, `plane ${c}`);
  // RGB → grey: grey pixels keep their value; green is brighter than red, red brighter than blue.
  const rgb = [90, 90, 90, 200, 200, 200, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0];
  const colour = path.join(dir, 'colour.png');
  fs.writeFileSync(colour, encodePng(6, 1, 2, 8, rgb));
  const g = await readPng(colour, { channels: 1 });
  t.same(g.shape, [1, 1, 6]);
  t.ok(Math.abs(g.data[0] - 90) <= 1 && Math.abs(g.data[1] - 200) <= 1, `grey values kept (${g.data[0]}, ${g.data[1]})`);
  t.ok(g.data[3] > g.data[2] && g.data[2] > g.data[4] && g.data[5] === 0, `luminance order ${Array.from(g.data)}`);
});

t.test('readPng drops alpha and scales 16-bit samples to 8 bits', async (t) => {
  const dir = tmpDir(t);
  const [w, h] = [3, 2];
  const rgba = pattern(w * h * 4, 3);
  const file = path.join(dir, 'rgba.png');
  fs.writeFileSync(file, encodePng(w, h, 6, 8, rgba));
  const img = await readPng(file);
  const rgbOnly = rgba.filter((_, i) => i % 4 !== 3);
  t.same(img.shape, [3, h, w]);
  t.same(Array.from(img.data), toCHW(rgbOnly, h, w, 3));
  const deep = Array.from({ length: w * h }, (_, i) => i * 13107); // 0 … 65535
  const file16 = path.join(dir, 'grey16.png');
  fs.writeFileSync(file16, encodePng(w, h, 0, 16, deep));
  const img16 = await readPng(file16);
  t.equal(img16.bitDepth, 16);
  t.same(img16.shape, [1, h, w]);
  t.same(Array.from(img16.data), deep.map((v) => v >> 8), `16-bit scaled by v >> 8: ${Array.from(img16.data)}`);
  // Every 16-bit code, grey and grey + alpha, as one channel and as three: v >> 8 each time
  // (libvips' b-w conversion used to map 18965 of the 65536 codes elsewhere).
  const all = Array.from({ length: 65536 }, (_, i) => i);
  const allFile = path.join(dir, 'all16.png');
  fs.writeFileSync(allFile, encodePng(256, 256, 0, 16, all));
  const want = all.map((v) => v >> 8);
  const one = await readPng(allFile);
  t.equal(Array.from(one.data).filter((v, i) => v !== want[i]).length, 0, 'grey16 as 1 channel');
  const three = await readPng(allFile, { channels: 3 });
  t.equal(Array.from(three.data.subarray(0, 65536)).filter((v, i) => v !== want[i]).length, 0, 'grey16 as 3 channels');
  const ga = path.join(dir, 'grey-alpha16.png');
  fs.writeFileSync(ga, encodePng(256, 256, 4, 16, all.flatMap((v) => [v, 65535 - v])));
  t.equal(Array.from((await readPng(ga)).data).filter((v, i) => v !== want[i]).length, 0, 'grey + alpha 16-bit: alpha dropped, grey by v >> 8');
  // 12-bit MR saved as 16-bit PNG with sBIT 12: the top 8 of the 12 bits (v >> 4), not 16 grey levels.
  const mr = Array.from({ length: 4096 }, (_, i) => i);
  const mrFile = path.join(dir, 'mr12.png');
  fs.writeFileSync(mrFile, encodePng(64, 64, 0, 16, mr, [12]));
  t.same(Array.from((await readPng(mrFile)).data), mr.map((v) => v >> 4), 'sBIT 12: v >> 4');
  const noSbit = path.join(dir, 'mr12-nosbit.png');
  fs.writeFileSync(noSbit, encodePng(64, 64, 0, 16, mr));
  t.equal(new Set((await readPng(noSbit)).data).size, 16, 'without sBIT, 0..4095 keeps 16 levels (documented)');
});

t.test('readPng rejects truncated and corrupt files with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const png = encodePng(16, 16, 2, 8, pattern(16 * 16 * 3, 4));
  for (const cut of [png.length - 12, png.length - 30, 60, 12]) {
    const file = path.join(dir, `cut${cut}.png`);
    fs.writeFileSync(file, png.subarray(0, cut));
    await expectDataError(t, readPng(file), file, /truncated/);
  }
  // Damaged bytes with the stored CRC: the chunk's CRC names the damage.
  const corrupt = Buffer.from(png);
  const idat = corrupt.indexOf('IDAT');
  corrupt.fill(0xaa, idat + 10, idat + 40);
  const idatLength = corrupt.readUInt32BE(idat - 4);
  const file = path.join(dir, 'corrupt.png');
  fs.writeFileSync(file, corrupt);
  const want = crc32(corrupt.subarray(idat, idat + 4 + idatLength)).toString(16).padStart(8, '0');
  const stored = png.readUInt32BE(idat + 4 + idatLength).toString(16).padStart(8, '0');
  await expectDataError(t, readPng(file), file, new RegExp(`is damaged: chunk "IDAT" at byte ${idat - 4} fails its CRC \\(stored 0x${stored}, computed 0x${want}\\)`));
  // The same damage with a CRC that matches it: the decoder finds the bad deflate stream.
  const recrc = Buffer.from(corrupt);
  recrc.writeUInt32BE(crc32(recrc.subarray(idat, idat + 4 + idatLength)), idat + 4 + idatLength);
  const file2 = path.join(dir, 'corrupt-recrc.png');
  fs.writeFileSync(file2, recrc);
  await expectDataError(t, readPng(file2), file2, /corrupt or truncated PNG/);
  // A damaged header: with the height 16 → 8, libvips decoded the first 8 rows without a word.
  const ihdr = Buffer.from(png);
  ihdr[23] = 8;
  const file3 = path.join(dir, 'ihdr.png');
  fs.writeFileSync(file3, ihdr);
  await expectDataError(t, readPng(file3), file3, /is damaged: chunk "IHDR" at byte 8 fails its CRC/);
  // A chunk length past the end of the file.
  const long = Buffer.from(png);
  long.writeUInt32BE(1e6, idat - 4);
  const file4 = path.join(dir, 'long.png');
  fs.writeFileSync(file4, long);
  await expectDataError(t, readPng(file4), file4, new RegExp(`is truncated: chunk "IDAT" at byte ${idat - 4} declares 1000000 bytes, past the end of the file`));
});

t.test('readPng rejects a file that is not a PNG with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const jpeg = path.join(dir, 'photo.png');
  await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } }).jpeg().toFile(jpeg);
  await expectDataError(t, readPng(jpeg), jpeg, /not a PNG file/);
  const empty = path.join(dir, 'empty.png');
  fs.writeFileSync(empty, '');
  await expectDataError(t, readPng(empty), empty, /not a PNG file/);
  const missing = path.join(dir, 'missing.png');
  await expectDataError(t, readPng(missing), missing, /no such file/);
});

t.test('readPng rejects bad options with ERR_CONFIG', async (t) => {
  const file = path.join(tmpDir(t), 'x.png');
  fs.writeFileSync(file, encodePng(1, 1, 0, 8, [1]));
  for (const opts of [{ channels: 2 }, { channels: '3' }, { chanels: 3 }, 3]) {
    const err = await rejection(readPng(file, opts as ReadPngOptions));
    t.type(err, ConfigError, JSON.stringify(opts));
    t.equal(err.code, 'ERR_CONFIG');
  }
});

t.test('a PNG whose header declares more than 8192×8192 pixels is refused before it is decoded', async (t) => {
  const dir = tmpDir(t);
  const header = (w: number, h: number) => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 0; // grey
    // One deflated row of zeros: the rest is missing, which only a decoder would notice.
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(w + 1))), chunk('IEND', Buffer.alloc(0))]);
  };
  const big = path.join(dir, 'big.png');
  fs.writeFileSync(big, header(16000, 16000));
  const before = process.memoryUsage().rss;
  await expectDataError(t, readPng(big), big, /is 16000×16000 pixels, more than the 67108864 \(8192×8192\) tabsight decodes/);
  t.ok(process.memoryUsage().rss - before < 200e6, 'nothing the size of the image was allocated');
  const edge = path.join(dir, 'edge.png');
  fs.writeFileSync(edge, header(8192, 8193));
  await expectDataError(t, readPng(edge), edge, /8192×8193 pixels, more than/);
  t.equal(PNG_MAX_PIXELS, 8192 * 8192);
});
