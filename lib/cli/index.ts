/**
 * The tabsight command line. Each subcommand validates its input before any
 * work. A TabsightError prints as `tabsight: CODE: message` and exits 1 (130
 * for ERR_ABORTED); a bad cohort.yaml gives one line per problem after that
 * one prefix. A malformed command line (unknown command or option, missing
 * required option, bad number) prints commander's message in the same form,
 * `tabsight: ERR_CONFIG: ...`, then the usage, and exits 1.
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../binding';
import { TabsightError } from '../errors';
import { dieOfSignal, int, signalHandled } from './args';
import { addDataCommands } from './data-commands';
import { addDeployCommands } from './deploy-commands';
import { runDemo } from './demo';
import { addTrainCommands } from './train-commands';
import { addSelectCommands, addStudyCommands } from './study-commands';
import { addCompareCommand, addExplainCommands } from './explain-commands';

/** Commander's `error: …` as the CLI's own error line, with the code a bad setting gets. */
export function usageErrorLine(message: string): string {
  return `tabsight: ERR_CONFIG: ${message.replace(/^error: /, '')}`;
}

export function buildProgram(): Command {
  const program = new Command('tabsight')
    .description('Pretrain image encoders with tabular data (multimodal contrastive learning), explain them, and export them to ONNX.')
    .version(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version)
    .showHelpAfterError()
    // Set before the subcommands exist: each copies its parent's output settings.
    .configureOutput({ outputError: (message, write) => write(usageErrorLine(message)) });

  program.command('info')
    .description('print the LibTorch build, CUDA availability, thread settings, distributed backends, OpenBLAS kernels, Winograd convolutions and the CPU cache')
    .action(() => {
      const info = native().runtimeInfo();
      const backends = native().distributedBackends() as { gloo: boolean; nccl: boolean };
      const { available, kernel, enabled, reason } = info.winograd;
      process.stdout.write(JSON.stringify({
        torch: info.torchVersion, cuda: info.cudaAvailable, gpus: info.cudaDeviceCount, threads: info.threads, cores: info.hardwareConcurrency, distributed: backends,
        blasCore: info.blasCore, winograd: { available, ...(kernel ? { kernel } : {}), enabled, ...(reason ? { reason } : {}) }, cpuCache: { enabled: info.cpuCache.enabled, capBytes: info.cpuCache.capBytes },
      }, null, 2) + '\n');
    });

  addDataCommands(program);
  addTrainCommands(program);
  addSelectCommands(program);
  addStudyCommands(program);
  addExplainCommands(program);
  addCompareCommand(program);

  addDeployCommands(program);

  program.command('demo')
    .description('synthetic cardiac cohort → multimodal and SimCLR pretraining → every task evaluated → table and report.html; then a short feature-selection study and a comparison of its all-features and mRMR top-10 runs')
    .option('--out <dir>', 'output directory (finished steps are reused)', 'tabsight-demo')
    .option('--epochs <n>', 'pretraining epochs per encoder', int('--epochs'), 8)
    .option('--n <n>', 'subjects', int('--n'), 1200)
    .option('--size <px>', 'image size', int('--size'), 64)
    .option('--no-study', 'skip the short feature-selection study (and the comparison of its runs)')
    .option('--no-compare', 'skip tabsight compare on the study\'s all-features and mRMR top-10 runs')
    .action(async (o) => {
      await runDemo({ out: o.out, epochs: o.epochs, n: o.n, size: o.size, study: o.study, compare: o.compare });
    });

  return program;
}

/**
 * Ctrl-C or SIGTERM in a command that does not stop gracefully itself (those
 * that do install their own handler: pretrain, study, select, embed,
 * predict): remove the temporary files in flight (an image cache being
 * converted, say), then die of the signal as without a handler.
 */
function dieOfSignalsCleanly(): () => void {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const handler = () => {
      if (signalHandled(sig)) return; // the command's own handler stops the work
      dieOfSignal(sig);
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return () => { for (const [sig, handler] of handlers) process.off(sig, handler); };
}

export async function main(argv: string[]): Promise<void> {
  const restoreSignals = dieOfSignalsCleanly();
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof TabsightError) {
      process.stderr.write(`tabsight: ${err.code}: ${err.message}\n`);
      process.exitCode = err.code === 'ERR_ABORTED' ? 130 : 1;
      return;
    }
    throw err;
  } finally {
    restoreSignals();
  }
}
