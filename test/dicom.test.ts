import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as dicomParser from 'dicom-parser';
import { readDicom } from '../lib/data/dicom';
import { ConfigError } from '../lib/errors';
import { expectDataError, FIXTURES, maxAbsDiff, reference, rejection, tmpDir } from './fixtures/readers/oracle';

type Ref = {
  shape: number[];
  sum: number;
  data: number[];
  rows: number;
  columns: number;
  bitsAllocated: number;
  pixelRepresentation: number;
  pixelSpacing: number[] | null;
  modality: string | null;
  transferSyntaxUID: string;
};

const fx = (name: string) => path.join(FIXTURES, name);
const CT = fx('CT_small.dcm'); // 128×128, signed 16-bit, RescaleIntercept -1024, Explicit VR LE
const MR = fx('MR_small.dcm'); // 64×64, signed 16-bit, Explicit VR LE
const MR_IMPLICIT = fx('MR_small_implicit.dcm'); // the same image, Implicit VR LE

/** Sets a US element (e.g. BitsAllocated) of an Explicit VR LE file in place. */
function patchUS(buf: Buffer, group: number, element: number, value: number): void {
  const tag = Buffer.from([group & 0xff, group >> 8, element & 0xff, element >> 8, 0x55, 0x53, 2, 0]);
  const at = buf.indexOf(tag, 132);
  if (at < 0) throw new Error(`tag (${group.toString(16)},${element.toString(16)}) not found`);
  buf.writeUInt16LE(value, at + 8);
}

t.test('readDicom matches pydicom (pixel_array + modality LUT) on 8/16-bit, signed/unsigned, implicit/explicit VR, multi-frame files', async (t) => {
  const dir = tmpDir(t);
  const U8 = path.join(dir, 'mr_u8.dcm'); // 8-bit unsigned, RescaleSlope 0.5, RescaleIntercept -10
  const S12 = path.join(dir, 'ct_s12x2.dcm'); // 2 frames, signed, 12 of 16 bits stored, slope 2, intercept 5
  const files = [CT, MR, MR_IMPLICIT, U8, S12];
  const refs = reference<Ref>([
    { op: 'dicom-derive', src: MR, dst: U8, variant: 'u8' },
    { op: 'dicom-derive', src: CT, dst: S12, variant: 's12x2' },
    ...files.map((file) => ({ op: 'dicom', file })),
  ]).slice(2);
  for (const [i, file] of files.entries()) {
    const label = path.basename(file);
    const got = await readDicom(file);
    const ref = refs[i];
    t.same(got.shape, ref.shape, `${label} shape`);
    t.equal(maxAbsDiff(got.data, ref.data), 0, `${label} values equal pydicom's`);
    t.equal(got.data.reduce((a, v) => a + v, 0), ref.sum, `${label} sum`);
    t.equal(got.meta.rows, ref.rows);
    t.equal(got.meta.columns, ref.columns);
    t.equal(got.meta.bitsAllocated, ref.bitsAllocated, `${label} bitsAllocated`);
    t.equal(got.meta.pixelRepresentation, ref.pixelRepresentation, `${label} pixelRepresentation`);
    t.same(got.meta.pixelSpacing ?? null, ref.pixelSpacing, `${label} pixelSpacing`);
    t.equal(got.meta.modality ?? null, ref.modality, `${label} modality`);
    t.equal(got.meta.transferSyntaxUID, ref.transferSyntaxUID, `${label} transfer syntax`);
  }
  const ct = await readDicom(CT);
  t.equal(ct.meta.rescaleIntercept, -1024);
  t.ok(Math.min(...ct.data) < 0, 'CT values are Hounsfield units, some negative');
  const s12 = await readDicom(S12);
  t.equal(s12.meta.bitsStored, 12);
  t.equal(s12.meta.frames, 2);
  t.ok(s12.data.some((v) => v < 0), 'sign-extended 12-bit values');

  // Bits above BitsStored (overlays, garbage) must not change the values.
  const buf = fs.readFileSync(S12);
  const el = dicomParser.parseDicom(new Uint8Array(buf)).elements.x7fe00010;
  for (let i = 0; i < el.length; i += 2) buf[el.dataOffset + i + 1] = (buf[el.dataOffset + i + 1] & 0x0f) | (i % 6 === 0 ? 0xa0 : 0x50);
  const noisy = path.join(dir, 'noisy.dcm');
  fs.writeFileSync(noisy, buf);
  t.equal(maxAbsDiff((await readDicom(noisy)).data, s12.data), 0, 'bits above BitsStored are masked');
});

t.test('readDicom applies Enhanced multi-frame rescales from the functional groups, and refuses a Modality LUT Sequence', async (t) => {
  const dir = tmpDir(t);
  const enhanced = path.join(dir, 'enhanced.dcm');
  const lut = path.join(dir, 'modlut.dcm');
  const [ref] = reference<{ shape: number[]; data: number[] }>([
    { op: 'dicom-derive', src: CT, dst: enhanced, variant: 'enhanced' },
    { op: 'dicom-derive', src: MR, dst: lut, variant: 'modlut' },
  ]);
  const got = await readDicom(enhanced);
  t.same(got.shape, ref.shape);
  // Shared group: slope 3, intercept −7; frame 1's own group: 0.5, 10 (numpy oracle; pydicom 2.3 ignores functional groups).
  t.equal(maxAbsDiff(got.data, ref.data), 0, 'per-frame and shared rescales applied');
  t.same([got.meta.rescaleSlope, got.meta.rescaleIntercept], [3, -7], "meta gives frame 0's rescale");
  await expectDataError(t, readDicom(lut), lut, /Modality LUT Sequence \(0028,3000\), which is not supported/);
});

t.test('readDicom rejects compressed and big-endian transfer syntaxes with ERR_DATA naming the syntax', async (t) => {
  await expectDataError(t, readDicom(fx('MR_small_RLE.dcm')), fx('MR_small_RLE.dcm'), /transfer syntax 1\.2\.840\.10008\.1\.2\.5 \(RLE Lossless\), which is not supported/);
  await expectDataError(t, readDicom(fx('MR_small_bigendian.dcm')), fx('MR_small_bigendian.dcm'), /1\.2\.840\.10008\.1\.2\.2 \(Explicit VR Big Endian\)/);
  await expectDataError(t, readDicom(fx('MR_small_jp2klossless.dcm')), fx('MR_small_jp2klossless.dcm'), /1\.2\.840\.10008\.1\.2\.4\.90 \(JPEG 2000 Lossless\)/);
});

t.test('readDicom rejects truncated files with ERR_DATA naming the file', async (t) => {
  await expectDataError(t, readDicom(fx('MR_truncated.dcm')), fx('MR_truncated.dcm'), /truncated or corrupt/);
  const dir = tmpDir(t);
  const full = fs.readFileSync(CT);
  for (const cut of [full.length - 1000, 600, 140]) {
    const file = path.join(dir, `ct${cut}.dcm`);
    fs.writeFileSync(file, full.subarray(0, cut));
    await expectDataError(t, readDicom(file), file, /truncated/);
  }
});

t.test('readDicom rejects a file that is not DICOM with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  for (const [name, body] of [['text.dcm', 'x'.repeat(300)], ['tiny.dcm', 'abc']] as const) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, body);
    await expectDataError(t, readDicom(file), file, /(not a DICOM Part 10 file|truncated or corrupt)/);
  }
  const missing = path.join(dir, 'missing.dcm');
  await expectDataError(t, readDicom(missing), missing, /no such file/);
  t.type(await rejection(readDicom(42 as unknown as string)), ConfigError);
});

t.test('readDicom rejects unsupported BitsAllocated and colour images with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const b32 = path.join(dir, 'b32.dcm');
  const buf = fs.readFileSync(MR);
  patchUS(buf, 0x0028, 0x0100, 32);
  fs.writeFileSync(b32, buf);
  await expectDataError(t, readDicom(b32), b32, /BitsAllocated 32; only 8 and 16 are supported/);
  const rgb = path.join(dir, 'rgb.dcm');
  const buf2 = fs.readFileSync(MR);
  patchUS(buf2, 0x0028, 0x0002, 3);
  fs.writeFileSync(rgb, buf2);
  await expectDataError(t, readDicom(rgb), rgb, /SamplesPerPixel 3/);
});

t.test('a PALETTE COLOR image (one sample: indices into a colour table) is refused; MONOCHROME1 and MONOCHROME2 are read', async (t) => {
  const dir = tmpDir(t);
  /** The Explicit VR LE file with (0028,0004) PhotometricInterpretation set to `value` (the element resized). */
  const withPhotometric = (value: string) => {
    const buf = fs.readFileSync(MR);
    const at = buf.indexOf(Buffer.from([0x28, 0x00, 0x04, 0x00, 0x43, 0x53]), 132);
    if (at < 0) throw new Error('(0028,0004) not found');
    const text = value.length % 2 ? `${value} ` : value;
    const head = Buffer.from(buf.subarray(0, at + 8));
    head.writeUInt16LE(text.length, at + 6);
    return Buffer.concat([head, Buffer.from(text, 'latin1'), buf.subarray(at + 8 + buf.readUInt16LE(at + 6))]);
  };
  const palette = path.join(dir, 'palette.dcm');
  fs.writeFileSync(palette, withPhotometric('PALETTE COLOR'));
  await expectDataError(t, readDicom(palette), palette, /has PhotometricInterpretation PALETTE COLOR; only greyscale images \(MONOCHROME1, MONOCHROME2\) are supported/);
  const mono1 = path.join(dir, 'mono1.dcm');
  fs.writeFileSync(mono1, withPhotometric('MONOCHROME1'));
  const [a, b] = [await readDicom(mono1), await readDicom(MR)];
  t.equal(a.meta.photometricInterpretation, 'MONOCHROME1');
  t.equal(maxAbsDiff(a.data, Array.from(b.data)), 0, 'MONOCHROME1 values as stored (not inverted, as documented)');
});

t.test('a RescaleSlope or RescaleIntercept that is present but not a finite number is ERR_DATA naming the tag (it was ignored)', async (t) => {
  const dir = tmpDir(t);
  /** Overwrites a DS element's value of an Explicit VR LE file in place, padded with spaces to its length. */
  const patchDS = (buf: Buffer, element: number, text: string) => {
    const at = buf.indexOf(Buffer.from([0x28, 0x00, element & 0xff, element >> 8, 0x44, 0x53]), 132);
    if (at < 0) throw new Error('tag not found');
    const len = buf.readUInt16LE(at + 6);
    if (text.length > len) throw new Error(`"${text}" does not fit in ${len} bytes`);
    buf.write(text.padEnd(len, ' '), at + 8, 'latin1');
  };
  const slope = Buffer.from(fs.readFileSync(CT));
  patchDS(slope, 0x1053, 'ab');
  const a = path.join(dir, 'slope.dcm');
  fs.writeFileSync(a, slope);
  await expectDataError(t, readDicom(a), a, /has RescaleSlope \(0028,1053\) "ab", which is not a finite number/);
  const inter = Buffer.from(fs.readFileSync(CT));
  patchDS(inter, 0x1052, '1e999');
  const b = path.join(dir, 'intercept.dcm');
  fs.writeFileSync(b, inter);
  await expectDataError(t, readDicom(b), b, /has RescaleIntercept \(0028,1052\) "1e999", which is not a finite number/);
});
