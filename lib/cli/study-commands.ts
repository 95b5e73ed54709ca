/** tabsight select and tabsight study (docs/feature-selection.md). */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, TabsightError } from '../errors';
import { SELECTION_METHODS, selectFeatures, type SelectionMethod } from '../features/selectors';
import { emitStudyJobs, mergeStudy, runStudyTrial, SCHEDULERS, type Scheduler } from '../study/jobs';
import type { StudyOptions } from '../study/plan';
import { runStudy } from '../study/runner';
import { writeStudyReport } from '../study/report';
import { defined, float, int, list, stopSignal } from './args';

function intList(name: string) {
  return (value: string): number[] => list(value).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`Expected positive integers for ${name} but received "${value}"`);
    return n;
  });
}

/** One selection method (select --method): a list is refused (study takes --methods). */
function oneMethod(value: string): SelectionMethod {
  const ms = methodList(value);
  if (ms.length > 1) throw new InvalidArgumentError(`Expected one method but received ${ms.length} (${ms.join(', ')}); select runs one, \`tabsight study --methods\` compares several`);
  return ms[0];
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
    .requiredOption('--method <m>', `${SELECTION_METHODS.join(' | ')}`, oneMethod)
    .option('--k <k>', 'features to select (default 10; vif and cluster without --k: their --threshold decides how many)', int('--k'))
    .option('--task <task...>', 'tasks whose relevance counts (default: every task)')
    .option('--relevance <r>', 'task | crossmodal: relevance term of mim / mrmr / mrmr-miq (default task)')
    .option('--seed <n>', 'seed (default 0)', int('--seed'))
    .option('--threshold <x>', 'without --k: vif\'s VIF threshold (default 10), cluster\'s cut height (default 1)', float('--threshold'))
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
      // Only the search stops after its current step (its runs resume); the
      // other methods write nothing but stdout, so Ctrl-C ends them at once.
      const { signal, dispose } = method === 'search' ? stopSignal() : { signal: undefined, dispose: () => {} };
      try {
        const sel = await selectFeatures(o.cohort, {
          method, k: o.k, tasks: o.task, relevance: o.relevance, seed: o.seed, threshold: o.threshold,
          crossModal: o.encoder ? { encoder: o.encoder } : undefined,
          run: method === 'attribution' ? o.run : undefined,
          device: method === 'attribution' ? o.device : undefined,
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

const JOB_MODES = [['emit', '--emit'], ['trial', '--trial'], ['merge', '--merge'], ['reportOnly', '--report-only']] as const;
const SLURM_FLAGS = [['slurmTime', '--slurm-time'], ['slurmPartition', '--slurm-partition'], ['slurmGpus', '--slurm-gpus'], ['slurmCpus', '--slurm-cpus']] as const;

/** The flags given on the command line (not defaults), by attribute name → long flag. */
function givenFlags(cmd: Command): Map<string, string> {
  return new Map(cmd.options.filter((opt) => cmd.getOptionValueSource(opt.attributeName()) === 'cli').map((opt) => [opt.attributeName(), opt.long ?? opt.flags]));
}

/** An AbortSignal for one trial: Ctrl-C as elsewhere, and SIGTERM (what SLURM sends at the time limit and on scancel). */
function trialSignal(): { signal: AbortSignal; dispose: () => void } {
  return stopSignal('step', ' (the checkpoint stays valid)');
}

export function addStudyCommands(program: Command): void {
  withPretrainFlags(program.command('study'))
    .description('compare feature selections by pretraining on them: every method × k × seed, plus all-features and image-only baselines; resumable; or emit them as a SLURM array (--emit slurm, --trial, --merge)')
    .option('--cohort <dir>', 'a cohort directory (required, except with --trial, --merge and --report-only)')
    .requiredOption('--out <dir>', 'the study directory (study.sqlite, runs/, report.html); rerun the same command to resume')
    .option('--methods <a,b>', `selection methods (default mim,mrmr,jmi,random): ${SELECTION_METHODS.filter((m) => m !== 'attribution').join(', ')}`, methodList)
    .option('--k <k1,k2>', 'subset sizes (default 5,10,20)', intList('--k'))
    .option('--seeds <n>', 'seeds 0…n−1 (default 3)', int('--seeds'))
    .option('--epochs <n>', 'epochs of every pretraining (default 10)', int('--epochs'))
    .option('--workers <n>', 'trials at once in this process, sharing its LibTorch threads (default 1)', int('--workers'))
    .option('--task <task...>', 'tasks (default: every task)')
    .option('--probe-seeds <n>', 'linear-probe seeds per evaluation (default 3)', int('--probe-seeds'))
    .option('--subsample <f>', 'fraction of train rows each seed selects on (default 0.8)', float('--subsample'))
    .option('--budget <x>', 'method search: budget in full pretrainings (default 3)', float('--budget'))
    .option('--report-only', 'only (re)write report.html from the store')
    .option('--emit <scheduler>', `write the study as jobs instead of running it: ${SCHEDULERS.join(' | ')} (STUDY/study.json, STUDY/slurm/study.sbatch: one array task per trial)`)
    .option('--trial <id>', 'run trial <id> of an emitted study (what array task <id> runs); takes only --out', int('--trial'))
    .option('--merge', "fold an emitted study's finished trials into study.sqlite and write report.html; takes only --out")
    .option('--slurm-time <t>', '--emit slurm: time limit per trial (#SBATCH --time), e.g. 02:00:00')
    .option('--slurm-partition <p>', '--emit slurm: partition (#SBATCH --partition)')
    .option('--slurm-gpus <n>', '--emit slurm: GPUs per trial (#SBATCH --gres=gpu:N); add --device cuda', int('--slurm-gpus'))
    .option('--slurm-cpus <n>', '--emit slurm: CPUs per trial (#SBATCH --cpus-per-task)', int('--slurm-cpus'))
    .action(async (o, cmd: Command) => {
      const given = givenFlags(cmd);
      const modes = JOB_MODES.filter(([key]) => given.has(key));
      if (modes.length > 1) throw new ConfigError(`Give one of --emit, --trial, --merge and --report-only, not ${modes.map(([, flag]) => flag).join(' and ')}`);
      const mode = modes[0]?.[0];
      const slurmGiven = SLURM_FLAGS.filter(([key]) => given.has(key));
      if (slurmGiven.length && o.emit !== 'slurm') throw new ConfigError(`${slurmGiven[0][1]} needs --emit slurm`);
      if (mode === 'trial' || mode === 'merge') {
        const extra = [...given].filter(([key]) => key !== 'out' && key !== mode).map(([, flag]) => flag);
        if (extra.length) throw new ConfigError(`--${mode} takes the study's options from OUT/study.json (written by --emit); drop ${extra.join(', ')}`);
      }
      if (mode === 'reportOnly') {
        process.stdout.write(`${await writeStudyReport(o.out)}\n`);
        return;
      }
      if (mode === 'merge') {
        const m = await mergeStudy(o.out);
        const lines = [`${m.done}/${m.total} trials done (${m.merged} merged now)${m.failed ? `, ${m.failed} failed` : ''}; store ${m.store}`];
        for (const u of m.unfinished) lines.push(`  trial ${u.id} ${u.name}: ${u.status === 'failed' ? `failed: ${u.error}` : 'no result yet (running, queued, or killed before it wrote one)'}`);
        if (m.rerun) lines.push(`to rerun the failed trials: ${m.rerun}`);
        if (m.rerunAfterArray) lines.push(`once the array has ended (squeue shows none of its tasks), to run the trials with no result: ${m.rerunAfterArray}`);
        if (m.report) lines.push(m.report);
        process.stdout.write(lines.join('\n') + '\n');
        if (m.unfinished.length) process.exitCode = 1;
        return;
      }
      if (mode === 'trial') {
        const { signal, dispose } = trialSignal();
        try {
          const r = await runStudyTrial(o.out, o.trial, { signal, log: (l) => process.stderr.write(`${l}\n`) });
          process.stdout.write(`trial ${r.id} ${r.name}: ${r.status === 'skipped' ? 'already done' : `done${r.resumed ? ' (resumed from its checkpoint)' : ''}`}\n`);
        } finally {
          dispose();
        }
        return;
      }
      if (!o.cohort) throw new ConfigError('tabsight study needs --cohort (only --trial, --merge and --report-only work without it)');
      const options: StudyOptions = {
        cohort: o.cohort, out: o.out, methods: o.methods, ks: o.k, seeds: o.seeds, epochs: o.epochs, tasks: o.task,
        probeSeeds: o.probeSeeds, subsample: o.subsample, search: o.budget !== undefined ? { budget: o.budget } : undefined,
        pretrain: pretrainFlags(o),
      };
      if (mode === 'emit') {
        if (!(SCHEDULERS as readonly string[]).includes(o.emit)) throw new ConfigError(`Unknown scheduler "${o.emit}" for --emit; expected one of: ${SCHEDULERS.join(', ')}`);
        if (given.has('workers')) throw new ConfigError('--workers has no effect with --emit: each array task runs one trial (the scheduler runs tasks in parallel)');
        const e = await emitStudyJobs(options, {
          scheduler: o.emit as Scheduler, slurm: defined({ time: o.slurmTime, partition: o.slurmPartition, gpus: o.slurmGpus, cpus: o.slurmCpus }),
        });
        process.stdout.write([
          `wrote ${e.script} (${e.trials} array tasks, one per trial; ${e.manifest} lists them) and ${e.studyFile}`,
          `submit:  ${e.submit}`,
          `then:    ${e.merge}`,
        ].join('\n') + '\n');
        return;
      }
      const { signal, dispose } = stopSignal();
      try {
        const summary = await runStudy({ ...options, workers: o.workers }, { signal, log: (l) => process.stderr.write(`${l}\n`) });
        process.stdout.write(`${summary.done}/${summary.total} trials done${summary.failed ? `, ${summary.failed} failed` : ''}${summary.unfinished ? `, ${summary.unfinished} unfinished` : ''}\n`);
        if (summary.report) process.stdout.write(`${summary.report}\n`);
        if (summary.failed) process.exitCode = 1;
      } finally {
        dispose();
      }
    });
}
