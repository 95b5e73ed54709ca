/** tabsight explain. */
import { Command } from 'commander';
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
    .option('--noise <f>', 'smoothgrad-ig: noise sd as a fraction of the images\' value range (default 0.15)', float('--noise'))
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
