// What a run directory holds when a command is refused or killed: a refused
// pretrain leaves a finished run as it was, a killed write leaves no
// temporary file behind for long, and a run's encoder never exists without
// its preprocessor.json.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { synthCardiac } from '../lib/synth';
import { pretrainCohort } from '../lib/pipeline/cohort-pretrain';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-run-dir-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const cohort = path.join(root, 'cohort');
const dist = (...p: string[]) => JSON.stringify(path.join(__dirname, '..', 'dist', 'lib', ...p));
const opts = {
  cohort, epochs: 2, batchSize: 16, seed: 1, warmupEpochs: 0,
  model: { arch: 'resnet18' as const, smallStem: true, tabularHidden: 16, tabularLayers: 2, projectionHidden: 16, projectionDim: 8 },
};
const finished = path.join(root, 'finished');

/** Every file of a folder with its bytes, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
}

t.before(async () => {
  await synthCardiac({ out: cohort, n: 64, size: 16, seed: 3 });
  await pretrainCohort({ ...opts, out: finished });
});

t.test('the preprocessor is written before training: at the first step it is there, and no encoder yet', async (t) => {
  const out = path.join(root, 'order');
  const seen: boolean[][] = [];
  await pretrainCohort({ ...opts, out, epochs: 1 }, {
    onProgress: (p) => {
      if (p.step === 1) seen.push([fs.existsSync(path.join(out, 'preprocessor.json')), fs.existsSync(path.join(out, 'image_encoder.safetensors'))]);
    },
  });
  t.same(seen, [[true, false]], 'preprocessor.json before the first step, the encoder only at the end');
  t.same(JSON.parse(fs.readFileSync(path.join(out, 'preprocessor.json'), 'utf8')), JSON.parse(fs.readFileSync(path.join(finished, 'preprocessor.json'), 'utf8')), 'the fitted preprocessor');
});

t.test('a fresh pretrain into a finished run without its checkpoint is refused, and changes nothing', async (t) => {
  const dir = path.join(root, 'no-ckpt');
  fs.cpSync(finished, dir, { recursive: true });
  fs.rmSync(path.join(dir, 'checkpoint.safetensors'));
  const before = snapshot(dir);
  await t.rejects(pretrainCohort({ ...opts, out: dir, seed: 7, features: ['age', 'sex'] }), { code: 'ERR_CONFIG', message: /already holds a finished run .*image_encoder\.safetensors/ });
  t.same(snapshot(dir), before, 'config.json, metrics.jsonl, the encoder and the preprocessor are as they were');
});

t.test('a resume the checkpoint cannot serve is refused before the run is touched', async (t) => {
  // Fewer epochs than the checkpoint has done.
  const fewer = path.join(root, 'fewer');
  fs.cpSync(finished, fewer, { recursive: true });
  const before = snapshot(fewer);
  await t.rejects(pretrainCohort({ ...opts, out: fewer, epochs: 1, resume: true }), { code: 'ERR_DATA', message: /checkpoint\.safetensors .*at epoch 2, past the 1 epoch\(s\) asked for/ });
  t.same(snapshot(fewer), before, 'the encoder, config.json and metrics.jsonl are as they were');

  // Tensor data cut off.
  const cut = path.join(root, 'cut');
  fs.cpSync(finished, cut, { recursive: true });
  const ckpt = path.join(cut, 'checkpoint.safetensors');
  fs.truncateSync(ckpt, fs.statSync(ckpt).size - 1000);
  const beforeCut = snapshot(cut);
  await t.rejects(pretrainCohort({ ...opts, out: cut, resume: true }), { code: 'ERR_DATA', message: /checkpoint\.safetensors is not a valid checkpoint: tensor ".*" data_offsets \[\d+, \d+\] go beyond the \d+-byte data buffer/ });
  t.same(snapshot(cut), beforeCut, 'nothing changed');

  // Checkpoints whose header is sound but whose tensors the trainer refuses: one missing, one of another shape.
  const edit = (dir: string, change: (header: Record<string, { shape: number[] }>) => void) => {
    const file = path.join(dir, 'checkpoint.safetensors');
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    change(header);
    const text = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    fs.writeFileSync(file, Buffer.concat([len, text, bytes.subarray(8 + n)]));
  };
  for (const [name, change, why] of [
    ['missing', (h: Record<string, { shape: number[] }>) => { delete h['model.image.conv1.weight']; }, /conv1\.weight/],
    ['reshaped', (h: Record<string, { shape: number[] }>) => { const k = Object.keys(h).find((x) => x.startsWith('optim.') && x.endsWith('exp_avg') && h[x].shape.length === 4)!; h[k].shape = [h[k].shape.reduce((a, b) => a * b, 1)]; }, /./],
  ] as const) {
    const dir = path.join(root, `refused-${name}`);
    fs.cpSync(finished, dir, { recursive: true });
    edit(dir, change);
    const snap = snapshot(dir);
    const err = await pretrainCohort({ ...opts, out: dir, epochs: 3, resume: true }).then(() => undefined, (e) => e as Error & { code: string });
    t.ok(err && /^ERR_/.test(err.code), `${name}: refused with ${err?.code}: ${err?.message}`);
    t.ok(err?.message.includes(path.join(dir, 'checkpoint.safetensors')) && err.message.endsWith('(the run is left as it was)'), `${name}: the message names the checkpoint, once`);
    t.equal(err?.message.split(path.join(dir, 'checkpoint.safetensors')).length, 2, `${name}: the path appears once`);
    t.match(err?.message ?? '', why);
    t.same(snapshot(dir), snap, `${name}: the encoder, config.json and metrics.jsonl are as they were`);
  }

  // The same run resumes as before (a finished run at its own epochs: nothing to train, the encoder written again).
  const same = path.join(root, 'same');
  fs.cpSync(finished, same, { recursive: true });
  await pretrainCohort({ ...opts, out: same, resume: true });
  t.ok(fs.readFileSync(path.join(same, 'image_encoder.safetensors')).equals(fs.readFileSync(path.join(finished, 'image_encoder.safetensors'))), 'a valid resume still works');
});

t.test('every safetensors file carries the CRC-32 of its data section; a damaged one is refused by the trainer and by the readers', async (t) => {
  const { crc32: zcrc } = await import('node:zlib') as unknown as { crc32?: (b: Uint8Array) => number };
  const { readSafetensors, encodeSafetensors, crc32, crc32Table } = await import('../lib/io/safetensors');
  // The oracle: Python's zlib.crc32 (as the value computed here by the JS table when Node has no zlib.crc32).
  const py = spawnSync('/usr/bin/python3', ['-c', 'import sys, zlib; d = open(sys.argv[1], "rb").read(); n = int.from_bytes(d[:8], "little"); print("%08x" % zlib.crc32(d[8 + n:]))', path.join(finished, 'checkpoint.safetensors')], { encoding: 'utf8' });
  for (const f of ['checkpoint.safetensors', 'image_encoder.safetensors']) {
    const file = path.join(finished, f);
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const meta = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')).__metadata__;
    t.match(meta.data_crc32, /^[0-9a-f]{8}$/, `${f} (written by the trainer) has data_crc32`);
    t.equal(meta.data_crc32, crc32(bytes.subarray(8 + n)).toString(16).padStart(8, '0'), `${f}: it is the CRC-32 of the data section`);
    if (f === 'checkpoint.safetensors' && py.status === 0) t.equal(meta.data_crc32, py.stdout.trim(), 'as Python\'s zlib.crc32 computes it');
  }
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, `the check value of CRC-32 (${zcrc ? "Node's zlib.crc32" : 'the JS table'})`);
  t.equal(crc32Table(Buffer.from('123456789')), 0xcbf43926, 'the table fallback: the check value');
  t.equal(crc32(new Uint8Array(new ArrayBuffer(0)), 0xcbf43926), 0xcbf43926, 'an empty tensor continues the CRC (Node\'s zlib.crc32 gives 0 for it)');
  const random = Uint8Array.from({ length: 4099 }, (_, i) => (i * 2654435761) >>> 24);
  t.equal(crc32Table(random.subarray(1000), crc32Table(random.subarray(0, 1000))), crc32(random), 'the table fallback continues a CRC as zlib does');
  // Files written here carry their own checksum, even with metadata copied from another file.
  const chunks = encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } }, { data_crc32: '00000000', note: 'copied' });
  const written = path.join(root, 'own.safetensors');
  fs.writeFileSync(written, Buffer.concat(chunks));
  t.same((await readSafetensors(written)).metadata.note, 'copied', 'a file written here reads back');

  // One byte of the checkpoint's data flipped: resume refused, naming the file, and the run left as it was.
  const dir = path.join(root, 'damaged');
  fs.cpSync(finished, dir, { recursive: true });
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  const bytes = fs.readFileSync(ckpt);
  bytes[bytes.length - 1000] ^= 0x40;
  fs.writeFileSync(ckpt, bytes);
  const before = snapshot(dir);
  await t.rejects(pretrainCohort({ ...opts, out: dir, epochs: 3, resume: true }), { code: 'ERR_DATA', message: /checkpoint\.safetensors: its data section does not match its checksum .*the file is damaged/ });
  t.same(snapshot(dir), before, 'nothing changed');
  await t.rejects(readSafetensors(ckpt), { code: 'ERR_DATA', message: /does not match its checksum/ }, 'the TypeScript reader refuses it too');
  // The image encoder damaged: embedding or exporting the run is refused.
  const enc = path.join(root, 'damaged-encoder');
  fs.cpSync(finished, enc, { recursive: true });
  const e = fs.readFileSync(path.join(enc, 'image_encoder.safetensors'));
  e[e.length - 8] ^= 1;
  fs.writeFileSync(path.join(enc, 'image_encoder.safetensors'), e);
  const { loadRun } = await import('../lib/run');
  await t.rejects(loadRun(enc), { code: 'ERR_DATA', message: /image_encoder\.safetensors: its data section does not match its checksum/ });
  const { exportRun } = await import('../lib/export/run-export');
  await t.rejects(exportRun(enc, path.join(root, 'never.onnx')), { code: 'ERR_DATA', message: /does not match its checksum/ });
});

t.test('a checkpoint stripped of its Adam moments is refused (it resumed with a fresh optimiser)', async (t) => {
  const dir = path.join(root, 'stripped');
  fs.cpSync(finished, dir, { recursive: true });
  const file = path.join(dir, 'checkpoint.safetensors');
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  for (const k of Object.keys(header)) if (k.startsWith('optim.')) delete header[k];
  const text = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file, Buffer.concat([len, text, bytes.subarray(8 + n)]));
  const before = snapshot(dir);
  await t.rejects(pretrainCohort({ ...opts, out: dir, epochs: 3, resume: true }), { code: 'ERR_DATA', message: /is at optimizer step \d+ but holds no Adam moments/ });
  t.same(snapshot(dir), before, 'nothing changed');
});

t.test('a checkpoint missing some of its Adam moments is refused: the count written with it, and each pair', async (t) => {
  // Rewrites the header without the tensors `drop` picks (the data section is left whole, so its CRC holds).
  const strip = (name: string, drop: (key: string) => boolean, meta?: (m: Record<string, string>) => void) => {
    const dir = path.join(root, name);
    fs.cpSync(finished, dir, { recursive: true });
    const file = path.join(dir, 'checkpoint.safetensors');
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    for (const k of keys) if (drop(k)) delete header[k];
    meta?.(header.__metadata__);
    const text = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    fs.writeFileSync(file, Buffer.concat([len, text, bytes.subarray(8 + n)]));
    return { dir, keys, saved: header.__metadata__.optimizer_moments as string | undefined };
  };
  const probe = strip('moments-probe', () => false);
  const pairs = probe.keys.filter((k) => /^optim\..*\.exp_avg$/.test(k));
  t.equal(probe.saved, String(pairs.length), 'optimizer_moments counts the parameters with moments');
  t.ok(pairs.length > 2);
  const victim = pairs[1].replace(/\.exp_avg$/, '');
  const one = strip('moments-one', (k) => k.startsWith(`${victim}.`));
  let before = snapshot(one.dir);
  await t.rejects(pretrainCohort({ ...opts, out: one.dir, epochs: 3, resume: true }), {
    code: 'ERR_DATA',
    message: new RegExp(`holds Adam moments for ${pairs.length - 1} parameter\\(s\\) of this model but was written with ${pairs.length} \\(metadata optimizer_moments\\)`),
  });
  t.same(snapshot(one.dir), before, 'nothing changed');
  const half = strip('moments-half', (k) => k === `${victim}.exp_avg_sq`);
  before = snapshot(half.dir);
  await t.rejects(pretrainCohort({ ...opts, out: half.dir, epochs: 3, resume: true }), { code: 'ERR_DATA', message: `has tensor ${victim}.exp_avg but not .exp_avg_sq` });
  t.same(snapshot(half.dir), before, 'nothing changed');
  // A checkpoint from before the count (no optimizer_moments) is still taken when it has every pair.
  const old = strip('moments-old', () => false, (m) => delete m.optimizer_moments);
  await pretrainCohort({ ...opts, out: old.dir, epochs: 3, resume: true });
  t.ok(fs.existsSync(path.join(old.dir, 'image_encoder.safetensors')), 'an older checkpoint resumes');
});

t.test('temporary files of killed writes are swept when the run is next locked; other files stay', async (t) => {
  const dir = path.join(root, 'stale');
  fs.cpSync(finished, dir, { recursive: true });
  const stale = ['checkpoint.safetensors.tmp-4194303-17', 'image_encoder.safetensors.tmp-12-3', '.config.json.tmp-77-0a1b2c3d', '.metrics.jsonl.tmp-77-ff', '.preprocessor.json.tmp-5-9e'];
  const kept = ['notes.txt', 'checkpoint.safetensors.tmp-x', '.config.json.tmp-77', 'checkpoint.safetensors.bak'];
  for (const f of [...stale, ...kept]) fs.writeFileSync(path.join(dir, f), 'partial');
  await pretrainCohort({ ...opts, out: dir, resume: true });
  for (const f of stale) t.notOk(fs.existsSync(path.join(dir, f)), `${f} is gone`);
  for (const f of kept) t.ok(fs.existsSync(path.join(dir, f)), `${f} stays`);
});

t.test('dying of Ctrl-C removes this process\'s temporary files: an atomic write in flight, and the trainer\'s', async (t) => {
  const dir = path.join(root, 'die');
  fs.mkdirSync(dir);
  // writeFileAtomic with many chunks: the CLI's second Ctrl-C (dieOfSignal) lands while the temporary file is open.
  const write = `
    const fs = require('node:fs');
    const { writeFileAtomic } = require(${dist('io', 'atomic.js')});
    const { dieOfSignal } = require(${dist('cli', 'args.js')});
    const dir = process.argv[1];
    const chunks = Array.from({ length: 400 }, () => new Uint8Array(1 << 20));
    const timer = setInterval(() => {
      if (fs.readdirSync(dir).some((f) => f.includes('.tmp-'))) { clearInterval(timer); dieOfSignal('SIGINT'); }
    }, 1);
    writeFileAtomic(dir + '/big.bin', chunks).then(() => { clearInterval(timer); console.log('finished'); });`;
  const a = spawnSync(process.execPath, ['-e', write, dir], { encoding: 'utf8' });
  t.equal(a.signal, 'SIGINT', `the writer died of the signal (stdout ${JSON.stringify(a.stdout)}, stderr ${a.stderr.slice(0, 300)})`);
  t.same(fs.readdirSync(dir), [], 'neither big.bin nor its temporary file is there');

  // A pretrain killed while the trainer writes: its temporary name is native's, and the run's exit clean-up finds it.
  const run = path.join(root, 'die-run');
  const train = `
    const fs = require('node:fs');
    const { pretrainCohort } = require(${dist('pipeline', 'cohort-pretrain.js')});
    const { dieOfSignal } = require(${dist('cli', 'args.js')});
    const [cohort, out] = process.argv.slice(1);
    pretrainCohort({ ...${JSON.stringify({ ...opts, cohort: undefined })}, cohort, out }, {
      beforeTraining: (dir) => {
        fs.writeFileSync(dir + '/checkpoint.safetensors.tmp-' + process.pid + '-42', 'half a checkpoint');
        fs.writeFileSync(dir + '/checkpoint.safetensors.tmp-' + (process.pid + 1) + '-42', 'another process');
        setImmediate(() => dieOfSignal('SIGINT'));
      },
    });`;
  const b = spawnSync(process.execPath, ['-e', train, cohort, run], { encoding: 'utf8' });
  t.equal(b.signal, 'SIGINT', `the training died of the signal (${b.stderr.slice(0, 300)})`);
  const left = fs.readdirSync(run);
  t.notOk(left.some((f) => f.startsWith('checkpoint.safetensors.tmp-') && f.endsWith(`-42`) && !f.includes(String(b.pid + 1))), `its own temporary checkpoint is gone (left: ${left.join(', ')})`);
  t.ok(left.includes(`checkpoint.safetensors.tmp-${b.pid + 1}-42`), 'another pid\'s is left to the next lock holder');
});

t.test('a resume of a run that is not there leaves no folder behind', async (t) => {
  const dir = path.join(root, 'never', 'made');
  await t.rejects(pretrainCohort({ ...opts, out: dir, resume: true }), { code: 'ERR_CONFIG', message: /Cannot resume: .*checkpoint\.safetensors does not exist/ });
  t.notOk(fs.existsSync(dir), 'the run folder it made is gone');
});
