/**
 * The tabsight command line. Each subcommand validates its input before any
 * work, and errors print as one line with their code.
 */
import { Command, InvalidArgumentError } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../binding';
import { readNpy, readNpyHeader, writeNpy } from '../data/npy';
import { TabsightError } from '../errors';
import { exportRun } from '../export/run-export';
import { OrtImageEncoder } from '../export/ort';
import { pretrain, PretrainMode } from '../pretrain';
import { loadRun } from '../run';
import { runDemo } from './demo';
import { trainingBar } from './progress';

function int(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`Expected an integer for ${name} but received "${value}"`);
    return n;
  };
}

function float(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number for ${name} but received "${value}"`);
    return n;
  };
}

/** An AbortSignal that fires on the first Ctrl-C; a second one exits at once. */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let count = 0;
  const onSigint = () => {
    count += 1;
    if (count === 1) {
      process.stderr.write('\ntabsight: stopping after this step (Ctrl-C again to quit now)…\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

async function loadTabularNpy(file: string): Promise<{ data: Float32Array; shape: [number, number] }> {
  const t = await readNpy(file);
  if (t.shape.length !== 2) throw new TabsightError('ERR_DATA', `Expected a 2-D array [N, F] in ${file} but found shape [${t.shape.join(', ')}]`);
  return { data: Float32Array.from(t.data as ArrayLike<number>), shape: [t.shape[0], t.shape[1]] };
}

export function buildProgram(): Command {
  const program = new Command('tabsight')
    .description('Pretrain image encoders with tabular data (multimodal contrastive learning), explain them, and export them to ONNX.')
    .version(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version)
    .showHelpAfterError();

  program.command('info')
    .description('print the LibTorch build, CUDA availability and thread settings')
    .action(() => {
      const info = native().runtimeInfo();
      process.stdout.write(JSON.stringify({ torch: info.torchVersion, cuda: info.cudaAvailable, gpus: info.cudaDeviceCount, threads: info.threads, cores: info.hardwareConcurrency }, null, 2) + '\n');
    });

  program.command('pretrain')
    .description('pretrain an image encoder: multimodal (CLIP with tabular data), simclr (images only) or supervised')
    .requiredOption('--images <file.npy>', 'images, N×C×H×W uint8 or float32, read memory-mapped')
    .option('--tabular <file.npy>', 'preprocessed tabular rows, N×F (needed for multimodal)')
    .option('--labels <file.npy>', 'class labels, N integers (supervised mode, removeFalseNegatives)')
    .requiredOption('--out <dir>', 'run directory')
    .option('--mode <mode>', 'multimodal | simclr | supervised', 'multimodal')
    .option('--arch <arch>', 'resnet18 | resnet50', 'resnet50')
    .option('--epochs <n>', 'epochs', int('--epochs'), 10)
    .option('--batch-size <n>', 'batch size', int('--batch-size'), 512)
    .option('--lr <x>', 'peak learning rate', float('--lr'), 3e-3)
    .option('--weight-decay <x>', 'weight decay', float('--weight-decay'), 1e-4)
    .option('--seed <n>', 'seed', int('--seed'), 0)
    .option('--device <device>', 'cpu | cuda | cuda:N', 'cpu')
    .option('--image-size <px>', 'training image size (default: the stored size)', int('--image-size'))
    .option('--resume', 'continue the run in --out from its checkpoint', false)
    .action(async (o) => {
      const { signal, dispose } = interruptSignal();
      const bar = trainingBar('pretrain');
      try {
        const header = await readNpyHeader(o.images);
        const tabular = o.tabular ? await loadTabularNpy(o.tabular) : undefined;
        const labels = o.labels ? Int32Array.from((await readNpy(o.labels)).data as ArrayLike<number>, Number) : undefined;
        const out = await pretrain({
          out: o.out, images: { npy: o.images }, tabular, labels, mode: o.mode as PretrainMode, epochs: o.epochs, batchSize: o.batchSize,
          lr: o.lr, weightDecay: o.weightDecay, seed: o.seed, device: o.device, resume: o.resume, imageSize: o.imageSize ?? header.shape[2],
          model: { arch: o.arch },
        }, { onProgress: bar.update, signal });
        bar.stop();
        process.stdout.write(`${out}\n`);
      } finally {
        bar.stop();
        dispose();
      }
    });

  program.command('embed')
    .description('embed images with a run (LibTorch) or an exported model (onnxruntime)')
    .option('--run <dir>', 'a run directory')
    .option('--model <file.onnx>', 'an exported model')
    .requiredOption('--images <file.npy>', 'images, N×C×H×W')
    .requiredOption('--out <file.npy>', 'embeddings, N×D float32')
    .option('--backend <backend>', 'torch | ort (default: ort with --model, torch with --run)')
    .option('--batch <n>', 'images per batch', int('--batch'), 64)
    .action(async (o) => {
      if (!o.run === !o.model) throw new TabsightError('ERR_CONFIG', 'Give exactly one of --run or --model');
      const images = await readNpy(o.images);
      if (!(images.data instanceof Uint8Array) && !(images.data instanceof Float32Array)) {
        throw new TabsightError('ERR_DATA', `Expected uint8 or float32 images in ${o.images} but found ${images.dtype}`);
      }
      const batch = { data: images.data, shape: images.shape as [number, number, number, number] };
      if (o.model) {
        const enc = await OrtImageEncoder.load(o.model);
        try {
          const r = await enc.embed(batch, { batchSize: o.batch });
          await writeNpy(o.out, r.embedding, [images.shape[0], r.dim]);
        } finally {
          await enc.dispose();
        }
      } else {
        const run = await loadRun(o.run);
        try {
          const emb = await run.embed(batch, { batchSize: o.batch });
          await writeNpy(o.out, emb, [images.shape[0], run.featureDim]);
        } finally {
          run.dispose();
        }
      }
      process.stdout.write(`${o.out}\n`);
    });

  program.command('export')
    .description("export a run's image encoder to ONNX, normalisation baked in")
    .requiredOption('--run <dir>', 'a run directory')
    .requiredOption('--out <file.onnx>', 'the ONNX file')
    .action(async (o) => {
      await exportRun(o.run, o.out);
      process.stdout.write(`${o.out}\n`);
    });

  program.command('demo')
    .description('generate data, pretrain multimodal and image-only encoders, and compare them')
    .option('--out <dir>', 'output directory', 'tabsight-demo')
    .option('--epochs <n>', 'pretraining epochs', int('--epochs'), 8)
    .action(async (o) => {
      await runDemo({ out: o.out, epochs: o.epochs });
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof TabsightError) {
      process.stderr.write(`tabsight: ${err.code}: ${err.message}\n`);
      process.exitCode = err.code === 'ERR_ABORTED' ? 130 : 1;
      return;
    }
    throw err;
  }
}
