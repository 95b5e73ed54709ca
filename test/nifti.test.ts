import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { NIFTI_GZ_MAX, NIFTI_GZ_SLACK, readNifti, ReadNiftiOptions } from '../lib/data/nifti';
import { ConfigError } from '../lib/errors';
import { expectDataError, FIXTURES, maxAbsDiff, reference, rejection, tmpDir } from './fixtures/readers/oracle';

type Ref = { shape: number[]; sum: number; data: (number | null)[]; pixdim: number[]; datatype: string; slice: number; frames: number[] };

const fx = (name: string) => path.join(FIXTURES, name);
const FUNCTIONAL = fx('functional.nii'); // 17×21×3×20 int16, little-endian, scl_slope 0.0754, vox_offset 0
const ANATOMICAL = fx('anatomical.nii'); // 33×41×25 int16, big-endian
const RESAMPLED = fx('resampled_anat_moved.nii'); // 17×21×3 float32, big-endian
const NIFTI2 = fx('example_nifti2.nii.gz'); // NIfTI-2, gzip, 32×20×12×2 int16
const STANDARD = fx('standard.nii.gz'); // 4×5×7 uint8, gzip

const cases: { file: string; opts?: ReadNiftiOptions }[] = [
  { file: FUNCTIONAL },
  { file: FUNCTIONAL, opts: { slice: 0, frames: [19, 0, 10] } },
  { file: ANATOMICAL },
  { file: ANATOMICAL, opts: { slice: 24, frames: [0] } },
  { file: RESAMPLED, opts: { slice: 2 } },
  { file: NIFTI2, opts: { slice: 'mid', frames: [1] } },
  { file: STANDARD },
];

t.test('readNifti matches nibabel on NIfTI-1/2, .nii/.nii.gz, 3D/4D, little/big-endian, scaled files', async (t) => {
  const refs = reference<Ref>(cases.map((c) => ({ op: 'nifti', file: c.file, slice: c.opts?.slice ?? 'mid', frames: c.opts?.frames ?? null })));
  for (const [i, c] of cases.entries()) {
    const label = `${path.basename(c.file)} ${JSON.stringify(c.opts ?? {})}`;
    const got = await readNifti(c.file, c.opts);
    const ref = refs[i];
    t.same(got.shape, ref.shape, `${label} shape`);
    t.equal(got.data.length, ref.data.length, `${label} length`);
    const scale = Math.max(1, ...ref.data.map((v) => Math.abs(v ?? 0)));
    t.ok(maxAbsDiff(got.data, ref.data) <= 1e-6 * scale, `${label} values within float32 precision (max diff ${maxAbsDiff(got.data, ref.data)})`);
    const sum = got.data.reduce((a, v) => (Number.isNaN(v) ? a : a + v), 0);
    t.ok(Math.abs(sum - ref.sum) <= 1e-6 * Math.max(1, Math.abs(ref.sum)) + 1e-6 * scale * got.data.length, `${label} sum`);
    t.ok(maxAbsDiff(got.pixdim, ref.pixdim) < 1e-5, `${label} pixdim`);
    t.equal(got.datatype, ref.datatype, `${label} datatype`);
    t.equal(got.slice, ref.slice, `${label} slice`);
    t.same(got.frames, ref.frames, `${label} frames`);
  }
});

t.test('readNifti applies scl_slope/scl_inter, and ignores them when the slope is 0', async (t) => {
  const scaled = await readNifti(FUNCTIONAL, { slice: 1, frames: [0] });
  t.ok(scaled.data.some((v) => !Number.isInteger(v)), 'scaled values are not integers');
  const file = path.join(tmpDir(t), 'noscale.nii');
  const buf = fs.readFileSync(FUNCTIONAL);
  buf.writeFloatLE(0, 112); // scl_slope
  fs.writeFileSync(file, buf);
  const raw = await readNifti(file, { slice: 1, frames: [0] });
  t.ok(raw.data.every((v) => Number.isInteger(v)), 'unscaled values are the stored integers');
  const [ref] = reference<Ref>([{ op: 'nifti', file, slice: 1, frames: [0] }]);
  t.equal(maxAbsDiff(raw.data, ref.data), 0, 'equal to nibabel');
  t.ok(maxAbsDiff(scaled.data, Array.from(raw.data, (v) => v * 0.07540696859359741 + 3100.76171875)) < 1e-3);
});

t.test('a valid scl_slope with a NaN scl_inter is refused (nibabel refuses it; it was read as 0)', async (t) => {
  const file = path.join(tmpDir(t), 'nan-inter.nii');
  const buf = fs.readFileSync(FUNCTIONAL);
  buf.writeFloatLE(NaN, 116); // scl_inter
  fs.writeFileSync(file, buf);
  await expectDataError(t, readNifti(file), file, /scl_slope is 0\.0754\d* but scl_inter is NaN; a scaled volume needs a finite intercept/);
  buf.writeFloatLE(0, 112); // scl_slope 0: not scaled, the intercept is not used
  fs.writeFileSync(file, buf);
  t.ok((await readNifti(file, { slice: 1, frames: [0] })).data.every((v) => Number.isInteger(v)), 'with slope 0 the NaN intercept is ignored');
});

t.test('readNifti reads a .nii.gz the same as the .nii it was compressed from', async (t) => {
  const file = path.join(tmpDir(t), 'functional.nii.gz');
  fs.writeFileSync(file, gzipSync(fs.readFileSync(FUNCTIONAL)));
  const a = await readNifti(FUNCTIONAL, { frames: [3, 4] });
  const b = await readNifti(file, { frames: [3, 4] });
  t.equal(maxAbsDiff(b.data, a.data), 0);
});

t.test('readNifti rejects a file that is not NIfTI with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const text = path.join(dir, 'notes.nii');
  fs.writeFileSync(text, 'x'.repeat(400));
  await expectDataError(t, readNifti(text), text, /not a NIfTI-1 or NIfTI-2 file/);
  const pair = path.join(dir, 'pair.hdr');
  const hdr = fs.readFileSync(FUNCTIONAL).subarray(0, 348);
  hdr.write('ni1\0', 344, 'latin1');
  fs.writeFileSync(pair, hdr);
  await expectDataError(t, readNifti(pair), pair, /\.hdr\/\.img pair, which is not supported/);
  await expectDataError(t, readNifti(path.join(dir, 'missing.nii')), path.join(dir, 'missing.nii'), /no such file/);
});

t.test('readNifti rejects truncated headers and data with ERR_DATA naming the file and byte counts', async (t) => {
  const dir = tmpDir(t);
  const full = fs.readFileSync(FUNCTIONAL);
  const header = path.join(dir, 'header.nii');
  fs.writeFileSync(header, full.subarray(0, 200));
  await expectDataError(t, readNifti(header), header, /truncated: the NIfTI header needs 348 bytes, the file has 200/);
  const data = path.join(dir, 'data.nii');
  fs.writeFileSync(data, full.subarray(0, full.length - 100));
  await expectDataError(t, readNifti(data), data, new RegExp(`17×21×3×20 voxels of int16 from byte 352 need 43192 bytes, the file has ${full.length - 100}`));
  const gz = path.join(dir, 'short.nii.gz');
  fs.writeFileSync(gz, gzipSync(full.subarray(0, full.length - 100)));
  await expectDataError(t, readNifti(gz), gz, /the decompressed data has 43092/);
});

t.test('readNifti reads multi-member gzip and ignores zero padding after the last member, as nibabel does', async (t) => {
  const dir = tmpDir(t);
  const raw = fs.readFileSync(FUNCTIONAL);
  const ref = await readNifti(FUNCTIONAL);
  const cut = 1000;
  const members = path.join(dir, 'members.nii.gz');
  fs.writeFileSync(members, Buffer.concat([gzipSync(raw.subarray(0, cut)), gzipSync(raw.subarray(cut))]));
  t.same(Array.from((await readNifti(members)).data), Array.from(ref.data), 'two gzip members');
  const padded = path.join(dir, 'padded.nii.gz');
  fs.writeFileSync(padded, Buffer.concat([gzipSync(raw), Buffer.alloc(512)]));
  t.same(Array.from((await readNifti(padded)).data), Array.from(ref.data), '512 zero bytes after the member');
});

t.test('a .nii.gz is decompressed only as far as its header needs: a gzip bomb is refused, modest trailing data is read', async (t) => {
  const dir = tmpDir(t);
  const raw = fs.readFileSync(FUNCTIONAL); // 43192 bytes: header and voxels, nothing after
  const ref = await readNifti(FUNCTIONAL);
  // The volume, then NIFTI_GZ_SLACK and one more MiB of zeros: about 70 KB of gzip.
  const bomb = path.join(dir, 'bomb.nii.gz');
  fs.writeFileSync(bomb, gzipSync(Buffer.concat([raw, Buffer.alloc(NIFTI_GZ_SLACK + (1 << 20))]), { level: 9 }));
  t.ok(fs.statSync(bomb).size < 200_000, `the bomb is ${fs.statSync(bomb).size} bytes`);
  await expectDataError(t, readNifti(bomb), bomb, new RegExp(`decompresses to more than ${43192 + NIFTI_GZ_SLACK} bytes, though its header needs 43192`));
  // 1 MiB after the volume (an extension some writer appended): read, and the same values.
  const tail = path.join(dir, 'tail.nii.gz');
  fs.writeFileSync(tail, gzipSync(Buffer.concat([raw, Buffer.alloc(1 << 20, 7)])));
  t.same(Array.from((await readNifti(tail)).data), Array.from(ref.data), 'trailing data within the slack is ignored');
  // A header that declares more than NIFTI_GZ_MAX bytes: refused from the header, nothing inflated past it.
  const huge = Buffer.from(raw);
  for (const [d, v] of [[1, 32767], [2, 32767], [3, 32767]] as const) huge.writeInt16LE(v, 40 + 2 * d);
  huge.writeInt16LE(1, 48); // one frame
  const big = path.join(dir, 'big.nii.gz');
  fs.writeFileSync(big, gzipSync(huge));
  await expectDataError(t, readNifti(big), big, new RegExp(`declares \\d+ bytes of header and voxel data, more than the ${NIFTI_GZ_MAX}`));
});

t.test('readNifti rejects corrupt or truncated gzip data with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const full = fs.readFileSync(NIFTI2);
  for (const cut of [3, 2000, full.length - 2]) {
    const file = path.join(dir, `cut${cut}.nii.gz`);
    fs.writeFileSync(file, full.subarray(0, cut));
    await expectDataError(t, readNifti(file), file, /(corrupt or truncated|truncated) gzip data/);
  }
  const garbled = Buffer.from(full);
  garbled.fill(0xff, 100, 200);
  const file = path.join(dir, 'garbled.nii.gz');
  fs.writeFileSync(file, garbled);
  await expectDataError(t, readNifti(file), file, /gzip data/);
});

t.test('readNifti rejects a slice or frame out of range with ERR_DATA naming the index and the valid range', async (t) => {
  await expectDataError(t, readNifti(FUNCTIONAL, { slice: 3 }), FUNCTIONAL, /slice 3 is out of range; the volume has 3 slice\(s\), valid indices are 0 to 2/);
  await expectDataError(t, readNifti(FUNCTIONAL, { frames: [0, 20] }), FUNCTIONAL, /frame 20 is out of range; the volume has 20 frame\(s\), valid indices are 0 to 19/);
  await expectDataError(t, readNifti(ANATOMICAL, { frames: [1] }), ANATOMICAL, /frame 1 is out of range; the volume has 1 frame\(s\), valid indices are 0 to 0/);
});

t.test('readNifti rejects an unsupported datatype and more than 4 dimensions with ERR_DATA naming the file', async (t) => {
  const dir = tmpDir(t);
  const rgb = path.join(dir, 'rgb.nii');
  const buf = fs.readFileSync(FUNCTIONAL);
  buf.writeInt16LE(128, 70); // datatype RGB24
  fs.writeFileSync(rgb, buf);
  await expectDataError(t, readNifti(rgb), rgb, /datatype 128 .*not supported/);
  const fiveD = path.join(dir, '5d.nii');
  const b5 = fs.readFileSync(FUNCTIONAL);
  b5.writeInt16LE(5, 40);
  b5.writeInt16LE(2, 50);
  fs.writeFileSync(fiveD, b5);
  await expectDataError(t, readNifti(fiveD), fiveD, /only 2D, 3D and 4D/);
});

t.test('readNifti rejects bad options with ERR_CONFIG', async (t) => {
  for (const opts of [{ slice: -1 }, { slice: 1.5 }, { frames: [] }, { frames: [-1] }, { frame: [0] }, 'mid']) {
    const err = await rejection(readNifti(FUNCTIONAL, opts as ReadNiftiOptions));
    t.type(err, ConfigError, JSON.stringify(opts));
    t.equal(err.code, 'ERR_CONFIG');
  }
});
