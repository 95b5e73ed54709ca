/** tabsight validate and tabsight synth. */
import { Command } from 'commander';
import { loadCohort } from '../data/cohort';
import { formatSummary, summarizeCohort } from '../data/validate-cohort';
import { synthCardiac } from '../synth/cardiac';
import { synthMnist } from '../synth/mnist';
import { float, int } from './args';

export function addDataCommands(program: Command): void {
  program.command('validate')
    .description('check a cohort (ids, images, columns, labels, splits) and print its summary')
    .requiredOption('--cohort <dir>', 'the cohort directory')
    .action(async (o) => {
      const cohort = await loadCohort(o.cohort);
      process.stdout.write(formatSummary(await summarizeCohort(cohort)));
    });

  const synth = program.command('synth').description('generate a cohort with known ground truth');
  synth.command('cardiac')
    .description('a synthetic cohort shaped like UK Biobank cardiac MR (see docs/cohorts.md)')
    .requiredOption('--out <dir>', 'the cohort directory')
    .option('--n <n>', 'subjects', int('--n'), 2000)
    .option('--size <px>', 'image size', int('--size'), 64)
    .option('--seed <k>', 'seed', int('--seed'), 0)
    .action(async (o) => {
      const r = await synthCardiac({ out: o.out, n: o.n, size: o.size, seed: o.seed });
      process.stdout.write(`${r.dir}: ${r.n} subjects, ${r.features} features, tasks ${r.tasks.join(', ')}\n`);
    });

  synth.command('mnist')
    .description('real MNIST digits with Morpho-MNIST morphometrics, perturbations and distractor columns (see docs/cohorts-mnist.md)')
    .requiredOption('--out <dir>', 'the cohort directory')
    .option('--n <n>', 'subjects', int('--n'), 5000)
    .option('--seed <k>', 'seed', int('--seed'), 0)
    .option('--split <split>', 'train | test: which MNIST set to draw from', 'train')
    .option('--perturb-fraction <f>', 'fraction of digits perturbed', float('--perturb-fraction'), 0.5)
    .action(async (o) => {
      const r = await synthMnist({ out: o.out, n: o.n, seed: o.seed, split: o.split, perturbFraction: o.perturbFraction });
      process.stdout.write(`${r.dir}: ${r.n} subjects, ${r.features} features, tasks ${r.tasks.join(', ')}\n`);
    });
}
