/**
 * The tabsight command line. Each subcommand validates its input before any
 * work, and errors print as one line with their code.
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../binding';
import { readNpy, writeNpy } from '../data/npy';
import { TabsightError } from '../errors';
import { exportRun } from '../export/run-export';
import { OrtImageEncoder } from '../export/ort';
import { loadRun } from '../run';
import { int } from './args';
import { addDataCommands } from './data-commands';
import { runDemo } from './demo';
import { addTrainCommands } from './train-commands';

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

  addDataCommands(program);
  addTrainCommands(program);

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
    .description('synthetic cardiac cohort → multimodal and SimCLR pretraining → every task evaluated → table and report.html')
    .option('--out <dir>', 'output directory (finished steps are reused)', 'tabsight-demo')
    .option('--epochs <n>', 'pretraining epochs per encoder', int('--epochs'), 8)
    .option('--n <n>', 'subjects', int('--n'), 1200)
    .option('--size <px>', 'image size', int('--size'), 64)
    .action(async (o) => {
      await runDemo({ out: o.out, epochs: o.epochs, n: o.n, size: o.size });
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
