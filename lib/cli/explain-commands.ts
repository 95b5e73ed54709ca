/** tabsight explain and tabsight compare. */
import { Command } from 'commander';
import { compareRuns } from '../explain/compare';
import { parseCompareMethods } from '../explain/compare-run';
import { explainRun, type ExplainMethod } from '../explain/explain-run';
import type { CamLayer } from '../explain/attribution';
import { float, int } from './args';

export function addExplainCommands(program: Command): void {
  program.command('explain')
    .description("attribute a run's image encoder on the first n test subjects of a cohort: attributions.npy, overlays/*.png, explain.json")
    .requiredOption('--run <dir>', 'a run directory')
    .requiredOption('--cohort <dir>', 'the cohort (its test split is explained)')
    .requiredOption('--method <m>', 'ig | gradcam | guided-backprop | guided-gradcam | smoothgrad-ig')
    .option('--target <t>', 'similarity (multimodal runs) | task:T[:CLASS] (RUN/heads/T.json) | dim:i (default similarity)')
    .option('--n <n>', 'test subjects (default 16)', int('--n'))
    .option('--out <dir>', 'output directory (default RUN/explain/<method>)')
    .option('--steps <n>', 'IG quadrature points (default 50)', int('--steps'))
    .option('--layer <layer>', 'GradCAM layer: conv1 | layer1 … layer4 (default layer4)')
    .option('--samples <n>', 'smoothgrad-ig: noisy copies (default 8)', int('--samples'))
    .option('--noise <f>', 'smoothgrad-ig: noise sd as a fraction of each image\'s own value range, max − min (default 0.15)', float('--noise'))
    .option('--device <device>', 'cpu | cuda | cuda:N (default cpu)')
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      const r = await explainRun({
        run: o.run, cohort: o.cohort, method: o.method as ExplainMethod, target: o.target, n: o.n, out: o.out, steps: o.steps,
        layer: o.layer as CamLayer | undefined, samples: o.samples, noise: o.noise, device: o.device,
        log: o.json ? undefined : (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `${r.out}\n`);
    });
}

export function addCompareCommand(program: Command): void {
  program.command('compare')
    .description('compare what two or more runs\' image encoders learned on a cohort\'s test split: CKA, attribution agreement, faithfulness (deletion/insertion), localisation on known lesions, randomisation sanity check, tabular IG, latent space, decodability → report.html, metrics.json')
    .requiredOption('--cohort <dir>', 'the cohort (its test split is used)')
    .requiredOption('--runs <dirs...>', 'two or more run directories pretrained on this cohort')
    .requiredOption('--out <dir>', 'output directory: report.html, metrics.json, attributions/<run>/<method>.npy, grids/<run>.png')
    .option('--n <n>', 'test subjects attributed: the first n of the test split (default 64)', int('--n'))
    .option('--methods <list>', 'comma list of ig, gradcam, guided-backprop, guided-gradcam (default all four)')
    .option('--target <t>', 'similarity (multimodal runs) | task:T[:CLASS] (each RUN/heads/T.json) | dim:i (default similarity)')
    .option('--steps <n>', 'IG quadrature points, also for the tabular IG (default 50)', int('--steps'))
    .option('--layer <layer>', 'GradCAM layer: conv1 | layer1 … layer4 (default layer4)')
    .option('--perturb-steps <n>', 'deletion/insertion steps: ceil(H·W / n) pixels per step (default 32)', int('--perturb-steps'))
    .option('--sanity-images <n>', 'images for the randomisation sanity check, 0 to skip it (default 8)', int('--sanity-images'))
    .option('--max-rows <n>', 'test subjects for CKA, latent space, tabular IG and decodability (default 512)', int('--max-rows'))
    .option('--device <device>', 'cpu | cuda | cuda:N (default cpu)')
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      const r = await compareRuns({
        cohort: o.cohort, runs: o.runs, out: o.out, n: o.n, methods: o.methods === undefined ? undefined : parseCompareMethods(o.methods),
        target: o.target, steps: o.steps, layer: o.layer as CamLayer | undefined, perturbSteps: o.perturbSteps, sanityImages: o.sanityImages,
        maxRows: o.maxRows, device: o.device, log: o.json ? undefined : (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `${r.report}\n`);
    });
}
