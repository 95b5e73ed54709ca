/** tabsight pretrain and tabsight evaluate. */
import { Command } from 'commander';
import * as path from 'node:path';
import { readNpy, readNpyHeader } from '../data/npy';
import { loadExperimentConfig, mergeConfig, type ExperimentConfig } from '../config';
import { ConfigError, DataError, TabsightError } from '../errors';
import { evaluateRun, type EvaluationResult } from '../pipeline/evaluate';
import { pretrainCohort } from '../pipeline/cohort-pretrain';
import { distributedFromEnv, distributedRank, pretrain, type DistributedOptions, type PretrainMode } from '../pretrain';
import type { MemoryFormat } from '../pretrain-options';
import { defined, featureList, float, int, list, stopSignal } from './args';
import { launchLocalRanks, withoutNproc } from './launch';
import { trainingBar } from './progress';

function experiment(file?: string): ExperimentConfig {
  return file ? loadExperimentConfig(file) : {};
}

/**
 * The --tabular rows N×F as float32, checked against the images: 2-D, one
 * row per image, finite values; int64 converted exactly (up to 2^53). Every
 * error is a DataError naming the file (and the row and column).
 */
export async function readTabularNpy(file: string, n: number, images: string): Promise<{ data: Float32Array; shape: [number, number] }> {
  const t = await readNpy(file);
  if (t.shape.length !== 2) throw new DataError(`Expected a 2-D array [N, F] in ${file} but found shape [${t.shape.join(', ')}]`);
  const [rows, cols] = t.shape;
  if (rows !== n) throw new DataError(`${file} holds ${rows} rows but ${images} holds ${n} images; give one tabular row per image`);
  const data = new Float32Array(rows * cols);
  const where = (k: number) => `row ${Math.floor(k / cols)}, column ${k % cols}`;
  if (t.data instanceof BigInt64Array) {
    const limit = 2n ** 53n;
    t.data.forEach((v, k) => {
      if (v > limit || v < -limit) throw new DataError(`${file} (int64) holds ${v} at ${where(k)}, beyond ±2^53: convert it to float first`);
      data[k] = Number(v);
    });
  } else {
    data.set(t.data as ArrayLike<number>);
  }
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new DataError(`${file} holds ${Number.isNaN(data[bad]) ? 'NaN' : data[bad]} at ${where(bad)}; tabular values must be finite`);
  return { data, shape: [rows, cols] };
}

export function addTrainCommands(program: Command): void {
  program.command('pretrain')
    .description('pretrain an image encoder: multimodal (CLIP with tabular data), simclr (images only) or supervised')
    .addHelpText('after', "\nWith torchrun's variables in the environment (MASTER_ADDR, MASTER_PORT, RANK,\nWORLD_SIZE, LOCAL_RANK), this runs as one rank of a data-parallel run, as\nstarted by torchrun, an srun wrapper or --nproc (docs/distributed.md).")
    .option('--cohort <dir>', 'a cohort directory (cohort.yaml); trains on its train split')
    .option('--images <file.npy>', 'instead of --cohort: images N×C×H×W (uint8, float16 or float32), memory-mapped')
    .option('--tabular <file.npy>', 'with --images: preprocessed tabular rows N×F')
    .requiredOption('--out <dir>', 'run directory')
    .option('--config <file.yaml>', 'experiment config (flags override it)')
    .option('--mode <mode>', 'multimodal | simclr | supervised (default multimodal)')
    .option('--features <a,b,c>', 'tabular features to pretrain with (default: all)', list)
    .option('--features-file <file>', 'the features, one per line')
    .option('--label-task <task>', 'labels for supervised mode or removeFalseNegatives')
    .option('--arch <arch>', 'resnet18 | resnet50 (default resnet50)')
    .option('--epochs <n>', 'epochs (default 10)', int('--epochs'))
    .option('--batch-size <n>', 'batch size (default 512)', int('--batch-size'))
    .option('--lr <x>', 'peak learning rate (default 3e-3)', float('--lr'))
    .option('--weight-decay <x>', 'weight decay (default 1e-4)', float('--weight-decay'))
    .option('--seed <n>', 'seed (default 0)', int('--seed'))
    .option('--device <device>', 'cpu | cuda | cuda:N (default cpu)')
    .option('--precision <p>', 'fp32 | bf16: bf16 autocasts the forward pass and loss (default fp32; see benchmarks/RESULTS.md before using it)')
    .option('--memory-format <f>', 'auto | channels_last | contiguous: layout of conv weights and image batches (default auto: channels_last on CPUs with AVX-512 or with bf16, contiguous on other CPUs and on cuda)')
    .option('--image-size <px>', 'training image size (default: the stored size)', int('--image-size'))
    .option('--init-weights <file>', 'initial image encoder weights (torchvision names, safetensors)')
    .option('--resume', 'continue the run in --out from its checkpoint')
    .option('--nproc <n>', 'data-parallel on this machine: start n ranks (child processes, Gloo on CPU); see docs/distributed.md', int('--nproc'))
    .option('--dist-timeout <sec>', 'seconds a rank waits for the others before failing with ERR_DIST (default 60)', float('--dist-timeout'))
    .option('--deterministic', 'deterministic kernels: cuDNN deterministic without autotuning, ops without a deterministic kernel refused (for reproducible CUDA runs; the CPU is deterministic already)')
    .option('--sync-batch-norm', 'batch norm statistics over all ranks (default for multimodal and simclr)')
    .option('--no-sync-batch-norm', 'batch norm statistics per rank')
    .action(async (o) => {
      const cfg = experiment(o.config);
      const flags = defined({
        mode: o.mode as PretrainMode | undefined, epochs: o.epochs, batchSize: o.batchSize, lr: o.lr, weightDecay: o.weightDecay, seed: o.seed,
        device: o.device, precision: o.precision as 'fp32' | 'bf16' | undefined, memoryFormat: o.memoryFormat as MemoryFormat | undefined, imageSize: o.imageSize, initWeights: o.initWeights, labelTask: o.labelTask,
        features: featureList(o.features, o.featuresFile),
        model: o.arch ? { arch: o.arch } : undefined,
        syncBatchNorm: o.syncBatchNorm as boolean | undefined,
        deterministic: o.deterministic as boolean | undefined,
        distributed: o.distTimeout !== undefined ? { timeoutSec: o.distTimeout as number } : undefined,
      });
      const p = mergeConfig(cfg.pretrain ?? {}, flags);
      const cohort = o.cohort ?? cfg.cohort;
      if (!cohort === !o.images) throw new TabsightError('ERR_CONFIG', 'Give exactly one of --cohort (or cohort: in --config) and --images');
      // torchrun's environment (set by --nproc, torchrun or an srun wrapper)
      // makes this process one rank of a data-parallel run.
      const env = distributedFromEnv();
      if (o.nproc !== undefined) {
        if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new ConfigError(`Expected positive integer for --nproc but received ${o.nproc}`);
        if (env && env.worldSize > 1) throw new ConfigError(`--nproc starts its own ranks; this process already is rank ${env.rank} of ${env.worldSize} (WORLD_SIZE is set)`);
        if (o.nproc > 1) {
          await launchLocalRanks({ nproc: o.nproc, script: process.argv[1], args: withoutNproc(process.argv.slice(2)) });
          return;
        }
      }
      const { distributed: distSettings, ...settings } = p;
      const distributed: DistributedOptions | undefined = env && env.worldSize > 1 ? { ...env, ...(distSettings ?? {}) } : undefined;
      const rank = distributedRank(distributed);
      const { signal, dispose } = rankSignal();
      // One progress report per run: rank 0's (losses are global).
      const bar = rank === 0 ? trainingBar('pretrain') : { update: () => undefined, stop: () => undefined };
      try {
        let out: string;
        if (cohort) {
          out = await pretrainCohort({ ...settings, distributed, cohort, out: o.out, resume: o.resume ?? false }, { onProgress: bar.update, signal });
        } else {
          const { features, labelTask, ...rest0 } = settings;
          const rest = { ...rest0, distributed };
          if (features || labelTask) throw new TabsightError('ERR_CONFIG', '--features and --label-task need --cohort');
          const header = await readNpyHeader(o.images);
          const tabular = o.tabular ? await readTabularNpy(o.tabular, header.shape[0], o.images) : undefined;
          out = await pretrain({
            ...rest, out: o.out, images: { npy: o.images }, imageSize: rest.imageSize ?? header.shape[2], resume: o.resume ?? false, tabular,
          }, { onProgress: bar.update, signal });
        }
        bar.stop();
        if (rank === 0) process.stdout.write(`${out}\n`);
      } finally {
        bar.stop();
        dispose();
      }
    });

  program.command('evaluate')
    .description("evaluate a run's image encoder on a cohort's tasks (test split, mean ± sd over probe seeds)")
    .requiredOption('--run <dir>', 'a run directory, or random:resnet18 / random:resnet50 for a random-init baseline')
    .option('--cohort <dir>', 'the cohort (default: cohort: in --config, else the one the run was trained on)')
    .option('--config <file.yaml>', 'experiment config (its evaluate: section)')
    .option('--task <task...>', 'tasks to evaluate (default: every task; one the splits cannot score, e.g. a class absent from test, is refused before anything is embedded)')
    .option('--all-tasks', "evaluate every task (the default; overrides --config's tasks)")
    .option('--protocol <p>', 'linear | finetune (default linear)')
    .option('--label-fraction <f>', 'fraction of train labels, in (0, 1]; MMCL reports 0.01, 0.1 and 1 (default 1)', float('--label-fraction'))
    .option('--seeds <n>', 'probe seeds (default 5)', int('--seeds'))
    .option('--backend <b>', 'embedding runtime: auto | ort | torch (default auto: onnxruntime when it matches LibTorch)')
    .option('--save-heads', 'also save one deployable probe per task in RUN/heads/<task>.json (for export --with-head)')
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      const cfg = experiment(o.config);
      if (o.allTasks && o.task) throw new TabsightError('ERR_CONFIG', 'Give --task or --all-tasks, not both');
      const e = mergeConfig(cfg.evaluate ?? {}, defined({ protocol: o.protocol, labelFraction: o.labelFraction, seeds: o.seeds, tasks: o.task }));
      if (o.allTasks) delete e.tasks;
      let cohort: string | undefined = o.cohort ?? cfg.cohort;
      if (!cohort && !String(o.run).startsWith('random:')) {
        const { loadRun } = await import('../run');
        const run = await loadRun(o.run);
        cohort = (run.config.meta as { cohort?: string }).cohort;
        run.dispose();
      }
      if (!cohort) throw new TabsightError('ERR_CONFIG', 'Give --cohort: the run does not name the cohort it was trained on');
      const saveHeads = o.saveHeads ? path.join(o.run, 'heads') : undefined;
      const result = await evaluateRun({ ...e, run: o.run, cohort, backend: o.backend, saveHeads, log: o.json ? undefined : (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(o.json ? JSON.stringify({ run: result.run, cohort: result.cohort, protocol: result.protocol, labelFraction: result.labelFraction, tasks: result.tasks }) + '\n' : formatEvaluation(result));
    });
}

/**
 * Ctrl-C and SIGTERM (see stopSignal; SLURM's scancel and time limit), and
 * for a rank started by --nproc also the launcher's disappearance: an
 * orphaned rank stops after its step like the others, rank 0 writing the
 * checkpoint.
 */
function rankSignal(): { signal: AbortSignal; dispose: () => void } {
  const interrupt = stopSignal('step', ' (the checkpoint stays valid)');
  const launcher = Number(process.env.TABSIGHT_LAUNCHER_PID);
  if (!Number.isInteger(launcher) || launcher <= 0) return interrupt;
  // Our output goes to the launcher's pipes; once it is gone, writing fails
  // with EPIPE, which must not kill the rank before it has stopped cleanly.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const orphan = new AbortController();
  const alive = () => {
    try {
      process.kill(launcher, 0);
      return true;
    } catch {
      return false;
    }
  };
  const timer = setInterval(() => {
    if (!alive()) {
      process.stderr.write('tabsight: the --nproc launcher is gone; stopping after this step\n');
      orphan.abort();
      clearInterval(timer);
    }
  }, 1000);
  timer.unref();
  return {
    signal: AbortSignal.any([interrupt.signal, orphan.signal]),
    dispose: () => {
      clearInterval(timer);
      interrupt.dispose();
    },
  };
}

export function formatEvaluation(r: EvaluationResult): string {
  const lines = [`${r.run} on ${r.cohort} (${r.protocol}, ${r.labelFraction * 100}% of labels, ${r.seeds} probe seeds; test split, mean ± sd over the probe seeds)`];
  for (const [task, metrics] of Object.entries(r.tasks)) {
    lines.push(`  ${task.padEnd(14)} ${Object.entries(metrics).map(([m, s]) => `${m} ${s.mean.toFixed(3)} ± ${s.sd.toFixed(3)}`).join('   ')}`);
  }
  return lines.join('\n') + '\n';
}
