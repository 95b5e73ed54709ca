/**
 * `tabsight demo`: the whole pipeline on the built-in synthetic cardiac
 * cohort, sized for 2 CPU cores. It generates the cohort, pretrains a
 * multimodal (CLIP, image + tabular) and an image-only (SimCLR) encoder,
 * evaluates both and a random-init encoder on every task with linear probes,
 * prints the table and writes report.html. Finished steps are kept, so a
 * second run only redoes what is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, makeDirs, ensureOutDir } from '../io/atomic';
import { evaluateRun, type EvaluationResult } from '../pipeline/evaluate';
import { pretrainCohort } from '../pipeline/cohort-pretrain';
import { barChartWithErrors, lineChart } from '../report/charts';
import { writeReport, type Section } from '../report/html';
import { synthCardiac } from '../synth/cardiac';
import { compareRuns } from '../explain/compare';
import type { CompareRunsOptions } from '../explain/compare-run';
import { runStudy } from '../study/runner';
import { exportedProbeMetric, verifyExportedProbe, type VerifyExportedProbeResult } from '../export/verify';
import { exportRun } from '../export/run-export';
import { trainingBar } from './progress';

export interface DemoOptions {
  out: string;
  /** Pretraining epochs per encoder. @default 8 */
  epochs: number;
  /** Subjects. @default 1200 */
  n?: number;
  /** Image size. @default 64 */
  size?: number;
  /** Probe seeds. @default 3 */
  seeds?: number;
  /** Run the short feature-selection study. @default true */
  study?: boolean;
  /** After the study, compare the all-features run with the mRMR top-10 run (compare/report.html). @default true */
  compare?: boolean;
  log?: (line: string) => void;
}

const MODES = ['multimodal', 'simclr'] as const;

export async function runDemo(options: DemoOptions): Promise<Record<string, EvaluationResult>> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const out = path.resolve(options.out);
  const n = options.n ?? 1200;
  const size = options.size ?? 64;
  const seeds = options.seeds ?? 3;
  ensureOutDir(out);

  const cohort = path.join(out, 'cohort');
  if (!fs.existsSync(path.join(cohort, 'cohort.yaml'))) {
    log(`generating the synthetic cardiac cohort: ${n} subjects, ${size}×${size} px, 3 frames`);
    await synthCardiac({ out: cohort, n, size, seed: 0 });
  } else {
    log(`reusing the cohort in ${cohort}`);
  }

  for (const mode of MODES) {
    const dir = path.join(out, 'runs', mode);
    if (fs.existsSync(path.join(dir, 'image_encoder.safetensors'))) {
      log(`reusing ${dir}`);
      continue;
    }
    const resume = fs.existsSync(path.join(dir, 'checkpoint.safetensors'));
    log(`pretraining ${mode} (ResNet-18, ${options.epochs} epoch${options.epochs === 1 ? "" : "s"})${resume ? ', resuming' : ''}`);
    const bar = trainingBar(mode);
    try {
      await pretrainCohort({
        cohort,
        out: dir,
        mode,
        resume,
        epochs: options.epochs,
        batchSize: 64,
        lr: 1e-3,
        warmupEpochs: options.epochs > 2 ? 1 : 0,
        model: { arch: 'resnet18', smallStem: false, tabularHidden: 512, projectionHidden: 512, projectionDim: 128 },
      }, { onProgress: bar.update });
    } finally {
      bar.stop();
    }
  }

  const results: Record<string, EvaluationResult> = {};
  const encoders: [string, string][] = [...MODES.map((m) => [m, path.join(out, 'runs', m)] as [string, string]), ['random init', 'random:resnet18']];
  for (const [name, run] of encoders) {
    const file = path.join(out, 'eval', `${name.replace(/\W+/g, '-')}.json`);
    if (fs.existsSync(file) && !run.startsWith('random:') && fs.statSync(file).mtimeMs > fs.statSync(path.join(run, 'image_encoder.safetensors')).mtimeMs) {
      results[name] = JSON.parse(fs.readFileSync(file, 'utf8')) as EvaluationResult;
      continue;
    }
    log(`evaluating ${name} on every task (linear probe, ${seeds} seeds)`);
    results[name] = await evaluateRun({ run, cohort, seeds, saveHeads: run.startsWith('random:') ? undefined : path.join(run, 'heads') });
    makeDirs(path.dirname(file));
    await writeFileAtomic(file, JSON.stringify(results[name], null, 2) + '\n');
  }

  const tasks = Object.keys(results.multimodal.tasks);
  const main = (task: string) => ('auc' in results.multimodal.tasks[task] ? 'auc' : 'r2');
  log('\nTest split, linear probe on frozen embeddings (mean ± sd over probe seeds):');
  log(`${'encoder'.padEnd(14)}${tasks.map((t) => `${t} ${main(t)}`.padStart(20)).join('')}`);
  for (const [name, r] of Object.entries(results)) {
    log(`${name.padEnd(14)}${tasks.map((t) => { const s = r.tasks[t][main(t)]; return `${s.mean.toFixed(3)} ± ${s.sd.toFixed(3)}`.padStart(20); }).join('')}`);
  }

  // Deploy the better pretrained encoder for one task as ONNX and show that
  // onnxruntime reproduces the probe's test metric.
  const deployTask = 'cad';
  const best = MODES.reduce((a, b) => (results[b].tasks[deployTask].auc.mean > results[a].tasks[deployTask].auc.mean ? b : a));
  const deployed: VerifyExportedProbeResult = await verifyExportedProbe(path.join(out, 'runs', best), cohort, deployTask, { out: path.join(out, `${best}-${deployTask}.onnx`) });
  log(`\nexported ${best} with its ${deployTask} probe to ${deployed.onnxFile}: test ${deployed.metric} ${deployed.ortMetric.toFixed(4)} in onnxruntime vs ${deployed.torchMetric.toFixed(4)} in LibTorch (max embedding difference ${deployed.maxEmbeddingDiff.toExponential(1)})`);
  // The same model as static int8 (export --int8): another arithmetic, so its metric moves a little.
  const int8File = path.join(out, `${best}-${deployTask}-int8.onnx`);
  const quantized = await exportRun(path.join(out, 'runs', best), int8File, { withHead: deployTask, quantize: {} });
  const int8 = await exportedProbeMetric(path.join(out, 'runs', best), int8File, cohort, deployTask);
  const agree = quantized.quantization!.agreement;
  const int8Agreement = `on ${agree.images} validation images, embedding cosine to float32 ≥ ${agree.minCosine.toFixed(4)}, ` +
    `probabilities max |Δ| ${agree.maxOutputDiff!.toFixed(3)} (mean ${agree.meanOutputDiff!.toFixed(3)})`;
  log(`int8 export ${int8File}: test ${int8.metric} ${int8.value.toFixed(4)} in onnxruntime; ${int8Agreement}`);

  const curves = MODES.flatMap((mode) => fs.readFileSync(path.join(out, 'runs', mode, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { epoch: number; loss: number; retrievalTop1: number }).map((m) => ({ run: mode, epoch: m.epoch + 1, loss: m.loss, top1: m.retrievalTop1 })));
  const sections: Section[] = [
    {
      heading: 'Setup',
      text: [
        `Synthetic cardiac cohort (${n} subjects, ${size}×${size} px, ED/mid/ES frames; see docs/cohorts.md). ` +
        `ResNet-18 encoders pretrained for ${options.epochs} epoch${options.epochs === 1 ? "" : "s"} on the train split: multimodal (CLIP between images and the tabular features) and image-only (SimCLR). ` +
        `Each frozen encoder is evaluated by linear probes on the test split, ${seeds} probe seeds; a randomly initialised encoder is the baseline.`,
        'Numbers are from this run only. With a few epochs on 2 CPU cores the encoders are far from converged; read the table as a working pipeline, not as a finding.',
      ],
    },
    { heading: 'Training curves', charts: [lineChart({ title: 'Pretraining loss per epoch', x: 'epoch', y: 'loss', series: 'run', data: curves })] },
    {
      heading: 'Downstream results',
      table: {
        columns: ['encoder', ...tasks.map((t) => `${t} (${main(t)})`)],
        rows: Object.entries(results).map(([name, r]) => [name, ...tasks.map((t) => { const s = r.tasks[t][main(t)]; return `${s.mean.toFixed(3)} ± ${s.sd.toFixed(3)}`; })]),
        caption: 'Test split; AUC for classification (macro one-vs-rest for multiclass), R² for regression.',
      },
      charts: [barChartWithErrors({
        title: 'Test metric by task and encoder',
        data: Object.entries(results).flatMap(([name, r]) => tasks.map((t) => ({ category: t, group: name, mean: r.tasks[t][main(t)].mean, sd: r.tasks[t][main(t)].sd, panel: main(t) }))),
        zero: false,
      })],
    },
    {
      heading: 'Deployment check',
      text: `The ${best} encoder with its ${deployTask} probe was exported to ONNX (${path.basename(deployed.onnxFile)}) and run with onnxruntime-node on the ${deployed.nTest} test images.`,
      table: {
        columns: ['backend', `test ${deployed.metric}`],
        rows: [
          ['LibTorch + probe', deployed.torchMetric.toFixed(4)], ['ONNX in onnxruntime', deployed.ortMetric.toFixed(4)],
          ['int8 ONNX in onnxruntime (export --int8)', int8.value.toFixed(4)],
        ],
        caption: `float32 ONNX against LibTorch: largest embedding difference ${deployed.maxEmbeddingDiff.toExponential(2)}; largest output difference ${deployed.maxOutputDiff.toExponential(2)}. ` +
          `int8 against float32 ONNX (another arithmetic): ${int8Agreement}.`,
      },
    },
  ];
  // A short feature-selection study: mRMR's top 10 features against all
  // features and image-only pretraining, one seed, a quarter of the epochs.
  // It shows the machinery; one seed on a short budget decides nothing.
  if (options.study ?? true) {
    const studyEpochs = Math.max(1, Math.round(options.epochs / 4));
    log(`\nshort study: mrmr top-10 features vs all features vs image-only, 1 seed, ${studyEpochs} epoch${studyEpochs === 1 ? '' : 's'} each`);
    const study = await runStudy({
      cohort,
      out: path.join(out, 'study'),
      methods: ['mrmr'],
      ks: [10],
      seeds: 1,
      epochs: studyEpochs,
      probeSeeds: 2,
      pretrain: { batchSize: 64, lr: 1e-3, warmupEpochs: 0, model: { arch: 'resnet18', smallStem: false, tabularHidden: 256, projectionHidden: 256, projectionDim: 64 } },
    }, { log: (line) => log(`  ${line}`) });
    log(`study: ${study.done}/${study.total} trials done${study.report ? `; report in ${study.report}` : ''}`);
    const section: Section = {
      heading: 'Feature-selection study (short)',
      text: `mRMR's top 10 tabular features against all features and image-only pretraining, one seed, ${studyEpochs} epoch(s) each: ${study.done}/${study.total} trials. The study's own report, with per-task results, paired differences and the selected features, is study/report.html next to this file.`,
      links: [{ href: 'study/report.html', text: 'Study report (study/report.html)' }],
    };
    if (options.compare ?? true) {
      const compared = await compareDemoRuns(out, cohort, log);
      if (compared) {
        section.text = [section.text as string, `What the two multimodal encoders learned, side by side (${compared.runs.join(' vs ')}: CKA, attribution agreement and faithfulness, scar localisation, a randomisation sanity check, tabular IG, the shared latent space and which features each image embedding decodes) is compare/report.html, from tabsight compare on 12 test images (and up to 12 with a scar).`];
        section.links!.push({ href: 'compare/report.html', text: `Comparison of ${compared.runs.join(' and ')} (compare/report.html)` });
      }
    }
    sections.push(section);
  }

  await writeReport(path.join(out, 'report.html'), { title: 'tabsight demo', subtitle: 'Multimodal vs image-only pretraining on the synthetic cardiac cohort', sections });
  log(`\nwrote ${path.join(out, 'report.html')}`);
  return results;
}

/**
 * `tabsight compare` on the study's all-features and mRMR top-10 runs, small
 * enough for the demo: 12 test images (and up to 12 with a scar), 8 IG steps, 12
 * deletion steps, 3 images for the sanity check (`overrides` for tests). Null when either run
 * is missing.
 */
export async function compareDemoRuns(out: string, cohort: string, log: (line: string) => void, overrides: Partial<CompareRunsOptions> = {}): Promise<{ runs: string[]; report: string } | null> {
  const runsDir = path.join(out, 'study', 'runs');
  const names = fs.existsSync(runsDir) ? fs.readdirSync(runsDir) : [];
  const all = names.find((d) => /^all-features-k\d+-s0$/.test(d));
  const mrmr = names.find((d) => d === 'mrmr-k10-s0');
  const done = (d: string | undefined) => d !== undefined && fs.existsSync(path.join(runsDir, d, 'image_encoder.safetensors'));
  if (!done(all) || !done(mrmr)) {
    log('compare: skipped (the study has no finished all-features and mrmr-k10 runs)');
    return null;
  }
  log(`\ncomparing ${all} with ${mrmr} (12 test images)`);
  const r = await compareRuns({
    cohort, runs: [path.join(runsDir, all!), path.join(runsDir, mrmr!)], out: path.join(out, 'compare'),
    n: 12, steps: 8, perturbSteps: 12, sanityImages: 3, maxRows: 256, gridImages: 6, log: (line) => log(`  ${line}`), ...overrides,
  });
  log(`compare: ${r.report}`);
  return { runs: r.runs, report: r.report };
}
