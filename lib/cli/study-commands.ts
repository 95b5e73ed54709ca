/** tabsight select and tabsight study (docs/feature-selection.md). */
import { Command, InvalidArgumentError } from 'commander';
import { TabsightError } from '../errors';
import { SELECTION_METHODS, selectFeatures, type SelectionMethod } from '../features/selectors';
import { runStudy } from '../study/runner';
import { writeStudyReport } from '../study/report';
import { float, int, interruptSignal, list } from './args';

function intList(name: string) {
  return (value: string): number[] => list(value).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`Expected positive integers for ${name} but received "${value}"`);
    return n;
  });
}

function methodList(value: string): SelectionMethod[] {
  const ms = list(value);
  if (ms.length === 0) throw new InvalidArgumentError('Expected at least one method');
  const bad = ms.find((m) => !(SELECTION_METHODS as readonly string[]).includes(m));
  if (bad !== undefined) throw new InvalidArgumentError(`Unknown method "${bad}"; expected ${SELECTION_METHODS.join(', ')}`);
  return ms as SelectionMethod[];
}

/** Pretraining settings shared by select --method search and study. */
function pretrainFlags(o: Record<string, unknown>) {
  const model: Record<string, unknown> = {};
  if (o.arch) model.arch = o.arch;
  if (o.tabularHidden) model.tabularHidden = o.tabularHidden;
  if (o.projectionHidden) model.projectionHidden = o.projectionHidden;
  const p: Record<string, unknown> = { model: { arch: 'resnet18', ...model } };
  for (const key of ['batchSize', 'lr', 'device', 'imageSize']) if (o[key] !== undefined) p[key] = o[key];
  return p;
}

function withPretrainFlags(cmd: Command): Command {
  return cmd
    .option('--arch <arch>', 'resnet18 | resnet50 (default resnet18)')
    .option('--batch-size <n>', 'batch size (default 512, capped at the train rows)', int('--batch-size'))
    .option('--lr <x>', 'peak learning rate (default 3e-3)', float('--lr'))
    .option('--tabular-hidden <n>', 'tabular MLP width (default 2048)', int('--tabular-hidden'))
    .option('--projection-hidden <n>', 'projection head width (default 2048)', int('--projection-hidden'))
    .option('--image-size <px>', 'training image size (default: the stored size)', int('--image-size'))
    .option('--device <device>', 'cpu | cuda | cuda:N (default cpu)');
}

export function addSelectCommands(program: Command): void {
  withPretrainFlags(program.command('select'))
    .description('select tabular features to pretrain with (train split only)')
    .requiredOption('--cohort <dir>', 'a cohort directory')
    .requiredOption('--method <m>', `${SELECTION_METHODS.join(' | ')}`, (v: string) => methodList(v)[0])
    .option('--k <k>', 'features to select (default 10; vif and cluster: their threshold decides)', int('--k'))
    .option('--task <task...>', 'tasks whose relevance counts (default: every task)')
    .option('--relevance <r>', 'task | crossmodal: relevance term of mim / mrmr / mrmr-miq (default task)')
    .option('--seed <n>', 'seed (default 0)', int('--seed'))
    .option('--threshold <x>', 'vif: VIF threshold (default 10); cluster: cut height without --k (default 1)', float('--threshold'))
    .option('--encoder <run>', "crossmodal: a run directory or random:resnet18 (default random:resnet18)")
    .option('--run <dir>', 'attribution: a full-feature multimodal pretraining run directory (required for --method attribution)')
    .option('--out <dir>', 'search: directory of its runs and search.sqlite')
    .option('--epochs <n>', 'search: epochs of one full pretraining (default 10)', int('--epochs'))
    .option('--budget <x>', 'search: budget in full pretrainings (default 3)', float('--budget'))
    .option('--direction <d>', 'search: forward | backward (default forward)')
    .option('--json', 'print { "method", "selected", "scores" } as one JSON object')
    .action(async (o) => {
      const method = o.method as SelectionMethod;
      if (method === 'search' && !o.out) throw new TabsightError('ERR_CONFIG', 'select --method search needs --out (where its runs and search.sqlite go)');
      const { signal, dispose } = interruptSignal();
      try {
        const sel = await selectFeatures(o.cohort, {
          method, k: o.k, tasks: o.task, relevance: o.relevance, seed: o.seed, threshold: o.threshold,
          crossModal: o.encoder ? { encoder: o.encoder } : undefined,
          run: method === 'attribution' ? o.run : undefined,
          search: method === 'search' ? { out: o.out, epochs: o.epochs ?? 10, budget: o.budget, direction: o.direction, pretrain: pretrainFlags(o) } : undefined,
          log: o.json ? undefined : (l) => process.stderr.write(`${l}\n`), signal,
        });
        if (o.json) {
          process.stdout.write(JSON.stringify({ method: sel.method, selected: sel.selected, scores: sel.scores }) + '\n');
          return;
        }
        const lines = [`${sel.method}: ${sel.selected.length} feature(s), in selection order (score)`];
        sel.selected.forEach((f, i) => lines.push(`  ${String(i + 1).padStart(3)}. ${f.padEnd(28)} ${Number.isFinite(sel.scores[f]) ? sel.scores[f].toFixed(4) : String(sel.scores[f] ?? '')}`));
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        dispose();
      }
    });
}

export function addStudyCommands(program: Command): void {
  withPretrainFlags(program.command('study'))
    .description('compare feature selections by pretraining on them: every method × k × seed, plus all-features and image-only baselines; resumable')
    .requiredOption('--cohort <dir>', 'a cohort directory')
    .requiredOption('--out <dir>', 'the study directory (study.sqlite, runs/, report.html); rerun the same command to resume')
    .option('--methods <a,b>', `selection methods (default mim,mrmr,jmi,random): ${SELECTION_METHODS.filter((m) => m !== 'attribution').join(', ')}`, methodList)
    .option('--k <k1,k2>', 'subset sizes (default 5,10,20)', intList('--k'))
    .option('--seeds <n>', 'seeds 0…n−1 (default 3)', int('--seeds'))
    .option('--epochs <n>', 'epochs of every pretraining (default 10)', int('--epochs'))
    .option('--workers <n>', 'trials at once in this process (default 1)', int('--workers'))
    .option('--task <task...>', 'tasks (default: every task)')
    .option('--probe-seeds <n>', 'linear-probe seeds per evaluation (default 3)', int('--probe-seeds'))
    .option('--subsample <f>', 'fraction of train rows each seed selects on (default 0.8)', float('--subsample'))
    .option('--budget <x>', 'method search: budget in full pretrainings (default 3)', float('--budget'))
    .option('--report-only', 'only (re)write report.html from the store')
    .action(async (o) => {
      if (o.reportOnly) {
        process.stdout.write(`${await writeStudyReport(o.out)}\n`);
        return;
      }
      const { signal, dispose } = interruptSignal();
      try {
        const summary = await runStudy({
          cohort: o.cohort, out: o.out, methods: o.methods, ks: o.k, seeds: o.seeds, epochs: o.epochs, workers: o.workers, tasks: o.task,
          probeSeeds: o.probeSeeds, subsample: o.subsample, search: o.budget !== undefined ? { budget: o.budget } : undefined,
          pretrain: pretrainFlags(o),
        }, { signal, log: (l) => process.stderr.write(`${l}\n`) });
        process.stdout.write(`${summary.done}/${summary.total} trials done${summary.failed ? `, ${summary.failed} failed` : ''}${summary.unfinished ? `, ${summary.unfinished} unfinished` : ''}\n`);
        if (summary.report) process.stdout.write(`${summary.report}\n`);
        if (summary.failed) process.exitCode = 1;
      } finally {
        dispose();
      }
    });
}
