#!/usr/bin/env node
/**
 * Question: how fast does a run's image encoder embed images on the CPU in
 * onnxruntime (the exported model), in LibTorch (our Run.embed), and in
 * Debian's PyTorch (torchvision resnet18 with the same weights, loaded from
 * the run's image_encoder.safetensors)?
 *
 * Model: ResNet-18 (standard stem) at 128 px, 3 channels, from a run
 * pretrained for one step (so BatchNorm statistics are real). Input: uint8
 * images; each backend converts them to float and normalises (ORT: inside the
 * graph; LibTorch: in Run.embed; PyTorch: in the timed loop). Batch 64, the
 * same thread count everywhere. After one warm-up pass each, the backends
 * run in alternating order for `reps` repetitions of `images` images; the
 * PyTorch side is one long-lived /usr/bin/python3 process.
 *
 * As a user gets them: 'onnxruntime' is OrtImageEncoder.embed at its default
 * batch (64), and 'libtorch' is Run.embed at its defaults (batch 16 on the
 * CPU, memoryFormat 'auto': at 128 px, channels_last batches on CPUs with
 * AVX-512 and NCHW ones without; embeddingMemoryFormat). The other rows
 * hold one setting fixed: 'libtorch, batch 64' and 'onnxruntime, batch 16'
 * compare the two at equal batches; 'libtorch, NCHW' is batch 64 with
 * memoryFormat 'contiguous', the layout LibTorch and PyTorch use by default,
 * and 'libtorch, channels_last' batch 64 with memoryFormat 'channels_last';
 * 'pytorch' runs NCHW as MMCL does, and 'pytorch, channels_last' converts
 * each batch with torch.channels_last, both at batch 64 and at 16. `--batch`
 * is the large batch (64) and `--small-batch` the small one (16). Prints JSON
 * lines: the machine, one line per backend (batch, median, min–max seconds
 * per repetition, images/s), the ratios, and the max abs differences between
 * the backends' embeddings.
 *
 * 'onnxruntime int8' is the static int8 model (`tabsight export --int8`),
 * its ranges calibrated on 64 other images like these: another arithmetic,
 * so its ratio is reported on its own line with its cosine similarity to
 * the float32 model's embeddings, not as the target's ratio. On a CPU
 * without VNNI its weights are 7-bit (`--reduce-range`): 8-bit weights
 * saturate onnxruntime's int16 pair sums there (docs/deploy.md).
 *
 * With --ort-profile, a second onnxruntime session with the same options and
 * profiling on runs 2 warm-up and 10 profiled batches. It prints the time per
 * operator type and, for each node, its time, output shape and, for Conv,
 * its GFLOP/s (2 × N × O × H × W × C/group × kh × kw, from the shapes
 * onnxruntime reports). Its optimiser's fusions (Conv + ReLU, Conv + Add) and
 * NCHWc layout are what run.
 *
 *   node benchmarks/inference.js [--reps 5] [--images 128] [--threads 2] [--batch 64] [--small-batch 16] [--size 128] [--ort-profile]
 */
'use strict';
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const reps = Number(args.reps ?? 5);
const count = Number(args.images ?? 128);
const threads = Number(args.threads ?? 2);
const B = Number(args.batch ?? 64);
const SB = Number(args['small-batch'] ?? 16);
const S = Number(args.size ?? 128);
process.env.TABSIGHT_THREADS = String(threads);
// library() loads the addon, which sets OPENBLAS_CORETYPE for the PyTorch side started afterwards.
const common = require('./support/common');
common.device('inference');
const ts = common.library();

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const maxAbsDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

const PY = `
import sys, time, json
sys.path.insert(0, ${JSON.stringify(path.join(__dirname, '..', 'test', 'fixtures'))})
import numpy as np, torch, torchvision
from torchvision_ref import read_safetensors, features
torch.set_num_threads(${threads})
weights, npy, out, B = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
batch = B
mean, std = json.loads(sys.argv[5]), json.loads(sys.argv[6])
tensors, meta = read_safetensors(weights)
model = torchvision.models.resnet18(weights=None)
missing = model.load_state_dict(tensors, strict=False).missing_keys
assert sorted(missing) == ['fc.bias', 'fc.weight'], missing
model.eval()
x8 = torch.from_numpy(np.load(npy))
m = torch.tensor(mean).view(1, -1, 1, 1); s = torch.tensor(std).view(1, -1, 1, 1)
fmt = torch.contiguous_format
def features_in(x):
    return features(model, x.contiguous(memory_format=fmt))
def run():
    outs = []
    with torch.inference_mode():
        for i in range(0, x8.shape[0], batch):
            x = (x8[i:i + batch].float() / 255.0 - m) / s
            outs.append(features_in(x))
    return torch.cat(outs)
run().numpy().astype('<f4').tofile(out)  # warm-up, and the features for the cross-check
print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__, 'threads': torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    name, size = line.split()
    fmt = torch.channels_last if name == 'channels_last' else torch.contiguous_format
    batch = int(size)
    t0 = time.perf_counter(); run(); print(time.perf_counter() - t0, flush=True)
`;

function pythonWorker(weights, npy, out, normalize) {
  const child = spawn('/usr/bin/python3', ['-c', PY, weights, npy, out, String(B), JSON.stringify(normalize.mean), JSON.stringify(normalize.std)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.resolve(l));
  child.on('exit', (code) => { for (const w of waiting.splice(0)) w.reject(new Error(`the PyTorch process exited with ${code}`)); });
  const next = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  return {
    ready: next().then(JSON.parse),
    rep: async (format, batch) => { const p = next(); child.stdin.write(`${format} ${batch}\n`); return Number(await p); },
    close: () => { child.stdin.end(); },
  };
}

// onnxruntime's own per-node profile of `runs` batches of B images (see the header).
async function ortProfile(onnx, images, tmp) {
  const ort = require('onnxruntime-node');
  const prefix = path.join(tmp, 'ort-profile');
  const session = await ort.InferenceSession.create(fs.readFileSync(onnx), { intraOpNumThreads: threads, interOpNumThreads: 1, enableProfiling: true, profileFilePrefix: prefix });
  const x = Float32Array.from(images.subarray(0, Math.min(B, count) * 3 * S * S));
  const rows = x.length / (3 * S * S);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, [rows, 3, S, S]) };
  const warmup = 2, runs = 10;
  for (let r = 0; r < warmup + runs; r++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  const file = fs.readdirSync(tmp).filter((f) => f.startsWith('ort-profile') && f.endsWith('.json')).map((f) => path.join(tmp, f))[0];
  if (!file) throw new Error('onnxruntime wrote no profile');
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  const modelRuns = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  if (modelRuns.length !== warmup + runs) throw new Error(`expected ${warmup + runs} runs in the profile, found ${modelRuns.length}`);
  const from = modelRuns[warmup].ts;
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from);
  const byOp = {}, byNode = {};
  let total = 0;
  for (const e of nodes) {
    const op = e.args.op_name;
    byOp[op] = (byOp[op] ?? 0) + e.dur;
    total += e.dur;
    const name = e.name.slice(0, -'_kernel_time'.length);
    const n = (byNode[name] ??= { op, us: 0, out: e.args.output_type_shape?.[0], ins: e.args.input_type_shape });
    n.us += e.dur;
  }
  const ms = (us) => +(us / runs / 1000).toFixed(3);
  const wallMs = median(modelRuns.slice(warmup).map((r) => r.dur)) / 1000;
  const ops = Object.entries(byOp).sort((a, b) => b[1] - a[1]);
  console.log(JSON.stringify({ figure: 'onnxruntime profile: per operator type', batch: rows, runs, model_run_median_ms: +wallMs.toFixed(3), ms_per_run: Object.fromEntries(ops.map(([k, v]) => [k, ms(v)])), share: Object.fromEntries(ops.map(([k, v]) => [k, +(v / total).toFixed(4)])) }));
  const shapeOf = (t) => (t ? Object.values(t)[0] : undefined);
  for (const [name, n] of Object.entries(byNode).sort((a, b) => b[1].us - a[1].us)) {
    const out = shapeOf(n.out), w = shapeOf(n.ins?.[1]);
    let gflops;
    if (n.op === 'Conv' && out?.length === 4 && w?.length === 4) gflops = +((2 * out[0] * out[2] * out[3] * w[0] * w[1] * w[2] * w[3]) / (n.us / runs / 1e6) / 1e9).toFixed(1);
    console.log(JSON.stringify({ figure: 'onnxruntime profile: node', node: name, op: n.op, ms_per_run: ms(n.us), output: out, weight: n.op === 'Conv' ? w : undefined, gflops }));
  }
}

(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-bench-inference-'));
  try {
    let seed = 12345;
    const images = new Uint8Array(count * 3 * S * S).map(() => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed >>> 24; });
    const shape = [count, 3, S, S];
    const run = path.join(tmp, 'run');
    await ts.pretrain({
      out: run, images: { data: images.subarray(0, 16 * 3 * S * S), shape: [16, 3, S, S] }, tabular: { data: new Float32Array(16 * 8).map((_, i) => Math.sin(i)), shape: [16, 8] },
      epochs: 1, batchSize: 16, warmupEpochs: 0, augment: { rate: 0 },
      model: { arch: 'resnet18', smallStem: false, tabularHidden: 64, projectionHidden: 64, projectionDim: 32 },
    });
    const onnx = path.join(tmp, 'model.onnx');
    await ts.exportRun(run, onnx);
    const npy = path.join(tmp, 'images.npy');
    await ts.writeNpy(npy, images, shape);

    const libtorch = await ts.loadRun(run);
    const ortEnc = await ts.OrtImageEncoder.load(onnx, { threads });
    // The static int8 model (export --int8): ranges calibrated on 64 other images of the same kind.
    const onnx8 = path.join(tmp, 'model-int8.onnx');
    const wfile = await ts.readSafetensors(path.join(run, 'image_encoder.safetensors'));
    const meta8 = { ...ts.imageEncoderMeta(wfile.metadata), imageSize: S };
    const opts8 = { normalize: { ...libtorch.config.normalize, inputScale: 1 / 255 }, inputRange: [0, 255] };
    const calib = new Uint8Array(64 * 3 * S * S).map(() => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed >>> 24; });
    const cal = await ts.calibrateImageEncoder(wfile.tensors, meta8, opts8, [{ start: 0, count: 64, data: calib, shape: [64, 3, S, S] }], { threads });
    const vnni = ts.cpuVnni().vnni === true;
    fs.writeFileSync(onnx8, ts.exportImageEncoder(wfile.tensors, meta8, { ...opts8, quantize: { ranges: cal.ranges, reduceRange: !vnni } }));
    const ortInt8 = await ts.OrtImageEncoder.load(onnx8, { threads });
    const py = pythonWorker(path.join(run, 'image_encoder.safetensors'), npy, path.join(tmp, 'py.f32'), libtorch.config.normalize);
    const pyInfo = await py.ready;
    const info = ts._native().runtimeInfo();
    console.log(JSON.stringify({
      figure: 'machine', ...common.machine(), loadavg_start: os.loadavg().map((v) => +v.toFixed(2)), blas_core: info.blasCore,
      onnxruntime: require('onnxruntime-node/package.json').version, libtorch: info.torchVersion, libtorch_threads: info.threads, pytorch: pyInfo.torch, pytorch_threads: pyInfo.threads,
      ort_threads: threads, model: 'resnet18', size: S, batch: B, small_batch: SB, libtorch_default_batch: ts.defaultEmbedBatch('cpu', S, false), libtorch_default_layout: ts.embeddingMemoryFormat('cpu', S, false), images_per_rep: count, reps,
    }));

    // Each backend: its batch and how one rep runs. onnxruntime and libtorch use their defaults.
    const js = (fn) => async () => { const t0 = process.hrtime.bigint(); await fn(); return Number(process.hrtime.bigint() - t0) / 1e9; };
    const backends = {
      onnxruntime: { batch: 64 /* OrtImageEncoder's default */, rep: js(() => ortEnc.embed({ data: images, shape })) },
      libtorch: { batch: ts.defaultEmbedBatch('cpu', S, false), rep: js(() => libtorch.embed({ data: images, shape })) },
      [`onnxruntime, batch ${SB}`]: { batch: SB, rep: js(() => ortEnc.embed({ data: images, shape }, { batchSize: SB })) },
      'onnxruntime int8': { batch: 64, rep: js(() => ortInt8.embed({ data: images, shape })) },
      [`libtorch, batch ${B}`]: { batch: B, rep: js(() => libtorch.embed({ data: images, shape }, { batchSize: B })) },
      'libtorch, NCHW': { batch: B, rep: js(() => libtorch.embed({ data: images, shape }, { batchSize: B, memoryFormat: 'contiguous' })) },
      'libtorch, channels_last': { batch: B, rep: js(() => libtorch.embed({ data: images, shape }, { batchSize: B, memoryFormat: 'channels_last' })) },
      pytorch: { batch: B, rep: () => py.rep('contiguous', B) },
      'pytorch, channels_last': { batch: B, rep: () => py.rep('channels_last', B) },
      [`pytorch, batch ${SB}`]: { batch: SB, rep: () => py.rep('contiguous', SB) },
      [`pytorch, channels_last, batch ${SB}`]: { batch: SB, rep: () => py.rep('channels_last', SB) },
    };
    // Warm-up (and the cross-check of the backends' outputs).
    const outs = {
      onnxruntime: (await ortEnc.embed({ data: images, shape })).embedding, libtorch: await libtorch.embed({ data: images, shape }),
      'onnxruntime int8': (await ortInt8.embed({ data: images, shape })).embedding,
      'libtorch, NCHW': await libtorch.embed({ data: images, shape }, { batchSize: B, memoryFormat: 'contiguous' }),
      'libtorch, channels_last': await libtorch.embed({ data: images, shape }, { batchSize: B, memoryFormat: 'channels_last' }),
      [`libtorch, batch ${B}`]: await libtorch.embed({ data: images, shape }, { batchSize: B }),
    };
    await ortEnc.embed({ data: images, shape }, { batchSize: SB });
    await py.rep('channels_last', B); await py.rep('contiguous', SB); await py.rep('channels_last', SB); // warm-up
    const b = fs.readFileSync(path.join(tmp, 'py.f32'));
    const pyOut = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    const order = Object.keys(backends);
    const times = Object.fromEntries(order.map((k) => [k, []]));
    for (let r = 0; r < reps; r++) {
      for (let k = 0; k < order.length; k++) {
        const name = order[(k + r) % order.length];
        times[name].push(await backends[name].rep());
      }
    }
    py.close();
    await ortEnc.dispose();
    await ortInt8.dispose();
    if ('ort-profile' in args) await ortProfile(onnx, images, tmp);
    libtorch.dispose();
    const fig = (name) => ({ figure: name, batch: backends[name].batch, reps: times[name].length, median_s: +median(times[name]).toFixed(4), min_s: +Math.min(...times[name]).toFixed(4), max_s: +Math.max(...times[name]).toFixed(4), images_per_s: +(count / median(times[name])).toFixed(1) });
    for (const name of order) console.log(JSON.stringify(fig(name)));
    const ips = (name) => count / median(times[name]);
    const best = (prefix) => Math.max(...order.filter((k) => k === prefix || k.startsWith(`${prefix},`)).map(ips));
    console.log(JSON.stringify({
      figure: 'int8 (another arithmetic: not the target\'s comparison)', int8_over_libtorch: +(ips('onnxruntime int8') / ips('libtorch')).toFixed(3),
      int8_over_onnxruntime_float32: +(ips('onnxruntime int8') / ips('onnxruntime')).toFixed(3),
      ...(() => {
        const a = outs.onnxruntime, q = outs['onnxruntime int8'];
        const cos = [];
        for (let i = 0; i < count; i++) {
          let d = 0, na = 0, nb = 0;
          for (let j = i * 512; j < (i + 1) * 512; j++) { d += a[j] * q[j]; na += a[j] * a[j]; nb += q[j] * q[j]; }
          cos.push(d / Math.sqrt(na * nb));
        }
        return { min_cosine_to_float32: +Math.min(...cos).toFixed(6), median_cosine_to_float32: +median(cos).toFixed(6), max_abs_diff_to_float32: +maxAbsDiff(a, q).toPrecision(3) };
      })(),
      calibration_images: cal.images, vnni, weights: vnni ? 'int8 [-127, 127]' : 'int8 [-63, 63] (reduce range: no VNNI)',
    }));
    console.log(JSON.stringify({
      figure: 'ratios (images/s over images/s)', onnxruntime_over_libtorch: +(ips('onnxruntime') / ips('libtorch')).toFixed(3),
      [`onnxruntime_over_libtorch_batch_${B}`]: +(ips('onnxruntime') / ips(`libtorch, batch ${B}`)).toFixed(3),
      [`onnxruntime_over_libtorch_batch_${SB}`]: +(ips(`onnxruntime, batch ${SB}`) / ips('libtorch')).toFixed(3),
      onnxruntime_best_over_libtorch_best: +(best('onnxruntime') / best('libtorch')).toFixed(3),
      [`libtorch_batch_${SB}_over_batch_${B}`]: +(ips('libtorch') / ips(`libtorch, batch ${B}`)).toFixed(3),
      onnxruntime_over_libtorch_nchw: +(ips('onnxruntime') / ips('libtorch, NCHW')).toFixed(3),
      [`libtorch_channels_last_over_nchw_batch_${B}`]: +(ips('libtorch, channels_last') / ips('libtorch, NCHW')).toFixed(3),
      [`pytorch_over_libtorch_nchw_batch_${B}`]: +(ips('pytorch') / ips('libtorch, NCHW')).toFixed(3),
      [`pytorch_channels_last_over_libtorch_batch_${B}`]: +(ips('pytorch, channels_last') / ips(`libtorch, batch ${B}`)).toFixed(3),
      [`pytorch_channels_last_over_libtorch_batch_${SB}`]: +(ips(`pytorch, channels_last, batch ${SB}`) / ips('libtorch')).toFixed(3),
      pytorch_best_over_libtorch_best: +(best('pytorch') / best('libtorch')).toFixed(3),
      onnxruntime_over_pytorch: +(ips('onnxruntime') / ips('pytorch')).toFixed(3), onnxruntime_best_over_pytorch_best: +(best('onnxruntime') / best('pytorch')).toFixed(3),
      loadavg_end: os.loadavg().map((v) => +v.toFixed(2)),
    }));
    console.log(JSON.stringify({
      figure: 'max abs difference of the embeddings', onnxruntime_vs_libtorch: maxAbsDiff(outs.onnxruntime, outs.libtorch),
      pytorch_vs_libtorch: maxAbsDiff(pyOut, outs.libtorch), onnxruntime_vs_pytorch: maxAbsDiff(outs.onnxruntime, pyOut),
      libtorch_nchw_vs_libtorch: maxAbsDiff(outs['libtorch, NCHW'], outs.libtorch), libtorch_channels_last_vs_libtorch: maxAbsDiff(outs['libtorch, channels_last'], outs.libtorch), [`libtorch_batch_${B}_vs_libtorch`]: maxAbsDiff(outs[`libtorch, batch ${B}`], outs.libtorch), pytorch_vs_libtorch_nchw: maxAbsDiff(pyOut, outs['libtorch, NCHW']),
      max_abs_embedding: outs.libtorch.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
    }));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
