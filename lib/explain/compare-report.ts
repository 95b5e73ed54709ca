/**
 * The compare report: a plain-language summary computed from the numbers,
 * then one section per metric (tables and vega-lite charts), and the
 * attribution grids.
 */
import * as path from 'node:path';
import { lineChart, heatmap, type VegaLiteSpec } from '../report/charts';
import { formatNumber, writeReport, type Cell, type Section } from '../report/html';
import { meanDifference, pairedDifference, summarize, type PairedDifference, type Summary } from './compare-metrics';
import type { CompareContext, RunAnalysis } from './compare-run';
import type { CrossRun } from './compare';

const METHOD_NAMES: Record<string, string> = { ig: 'Integrated Gradients', gradcam: 'GradCAM', 'guided-backprop': 'Guided Backprop', 'guided-gradcam': 'Guided GradCAM', random: 'random order' };

const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');
const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '–');
const medIqr = (s: Summary) => (s.n ? `${f3(s.median)} [${f3(s.q1)}, ${f3(s.q3)}]` : '–');
const ci = (d: PairedDifference) => `${d.estimate >= 0 ? '+' : ''}${f3(d.estimate)} (95% CI ${f3(d.lower)} to ${f3(d.upper)})`;
const above = (d: PairedDifference | null) => !!d && d.lower > 0;
/** Paired images (or subjects) a per-image comparison needs before it names a difference. */
export const MIN_PAIRED = 10;
const below = (d: PairedDifference | null) => !!d && d.upper < 0;

function pairsOf(runs: RunAnalysis[]): [RunAnalysis, RunAnalysis][] {
  const out: [RunAnalysis, RunAnalysis][] = [];
  for (let a = 0; a < runs.length; a++) for (let b = a + 1; b < runs.length; b++) out.push([runs[a], runs[b]]);
  return out;
}

/**
 * What the summary says of each method's deletion curve against a random
 * deletion order (per-image deletion AUCs, paired; median difference with a
 * 95% bootstrap interval): the methods whose AUC is above random's (they
 * deleted in an order that lowered the score more slowly), and those that
 * cannot be told apart from it. A method below random is what a faithful map
 * does and is not named; one with fewer than MIN_PAIRED finite pairs is not
 * judged.
 */
export function deletionVsRandom(label: string, curves: Record<string, { deletion: ArrayLike<number> }>, methods: readonly string[], reps: number, seed: number): string[] {
  const vsRandom = methods
    .map((m) => ({ m, d: pairedDifference(Array.from(curves[m].deletion), Array.from(curves.random.deletion), reps, seed, 'median') }))
    .filter((x) => x.d.n >= MIN_PAIRED);
  const worse = vsRandom.filter((x) => above(x.d)).map((x) => x.m);
  const same = vsRandom.filter((x) => !above(x.d) && !below(x.d)).map((x) => x.m);
  const out: string[] = [];
  if (worse.length) out.push(`${label}: ${worse.map((m) => METHOD_NAMES[m]).join(', ')} deleted pixels in an order that lowered the score more slowly than a random order (deletion AUC above random's).`);
  if (same.length) out.push(`${label}: ${same.map((m) => METHOD_NAMES[m]).join(', ')} could not be told apart from a random order in deletion (the interval of the difference in deletion AUC includes 0).`);
  return out;
}

/**
 * Statements the numbers support: each difference is named only when its
 * paired 95% bootstrap interval excludes 0; otherwise the numbers are given
 * as they are, or the summary says that no difference was found.
 */
export function summaryStatements(ctx: CompareContext, runs: RunAnalysis[], x: CrossRun): string[] {
  const o = ctx.options;
  const out: string[] = [];
  const reps = 1000;
  out.push(`Every number below comes from one test split (${ctx.rows.length} attributed images, ${ctx.analysisRows.length} subjects for embeddings) and one pretraining per run, so it describes these runs, not their training recipes. Differences in faithfulness and localisation are called out only when a paired 95% bootstrap interval over images excludes 0 (each comparison on its own, not corrected for the several methods); decodability differences need a Benjamini–Hochberg discovery.`);
  for (const [a, b] of pairsOf(runs)) {
    const k = x.cka.find((c) => c.a === a.label && c.b === b.label)!;
    out.push(`${a.label} vs ${b.label}: linear CKA between their image embeddings is ${f3(k.linear)} and RBF CKA ${f3(k.rbf)} (1: the same representation up to rotation and scale).`);

    const d = x.decodability;
    const diffs = d.differences[`${a.label}|${b.label}`];
    const decodable = (label: string, j: number) => (d.features[j].metric === 'r2' ? d.values[label][j] > 0 : d.values[label][j] > 0.5);
    const better = (winner: RunAnalysis, sign: number) => d.features
      .map((f, j) => ({ f, j, diff: diffs[j] }))
      .filter((e) => e.diff && e.diff.discovery && sign * e.diff.estimate > 0 && decodable(winner.label, e.j))
      .sort((p, q) => sign * (q.diff!.estimate - p.diff!.estimate));
    const aBetter = better(a, 1);
    const bBetter = better(b, -1);
    const valid = diffs.filter((v) => v !== null).length;
    const list = (items: typeof aBetter) => items.slice(0, 6).map((e) => `${e.f.name} (${e.f.metric === 'r2' ? 'R²' : 'AUC'} ${f2(d.values[a.label][e.j])} vs ${f2(d.values[b.label][e.j])})`).join(', ');
    out.push(`Decodability from the frozen image embedding (${valid} features, ${d.rows} test subjects): ${aBetter.length} feature(s) are decoded better from ${a.label} and ${bBetter.length} from ${b.label}; the others show no difference.` +
      (aBetter.length ? ` Better in ${a.label}: ${list(aBetter)}${aBetter.length > 6 ? ', …' : ''}.` : '') +
      (bBetter.length ? ` Better in ${b.label}: ${list(bBetter)}${bBetter.length > 6 ? ', …' : ''}.` : '') +
      ' "Better" needs a Benjamini–Hochberg discovery at 5% over the features (paired bootstrap over rows) and the better run to decode the feature at all (R² > 0, AUC > 0.5). The bootstrap keeps the cross-validated predictions fixed, so it does not include the variability of the fits: with few rows, read these as leads.');

    for (const m of o.methods) {
      const del = pairedDifference([...a.faithfulness[m].deletion], [...b.faithfulness[m].deletion], reps, o.seed, 'median');
      const ins = pairedDifference([...a.faithfulness[m].insertion], [...b.faithfulness[m].insertion], reps, o.seed + 1, 'median');
      const parts: string[] = [];
      if (Math.min(del.n, ins.n) < MIN_PAIRED) {
        out.push(`${METHOD_NAMES[m]}: deletion/insertion AUC on too few images (${Math.min(del.n, ins.n)}; at least ${MIN_PAIRED} are needed) to compare ${a.label} and ${b.label}.`);
        continue;
      }
      if (below(del)) parts.push(`${a.label}'s maps are more faithful by deletion (median per-image AUC difference ${ci(del)}, lower is better)`);
      else if (above(del)) parts.push(`${b.label}'s maps are more faithful by deletion (median per-image AUC difference ${a.label} − ${b.label} ${ci(del)}, lower is better)`);
      if (above(ins)) parts.push(`${a.label}'s maps are more faithful by insertion (median per-image AUC difference ${ci(ins)}, higher is better)`);
      else if (below(ins)) parts.push(`${b.label}'s maps are more faithful by insertion (median per-image AUC difference ${a.label} − ${b.label} ${ci(ins)}, higher is better)`);
      out.push(`${METHOD_NAMES[m]}: ${parts.length ? parts.join('; ') : `no difference in deletion or insertion AUC between ${a.label} and ${b.label} (both intervals include 0)`}.`);
    }

    if (ctx.lesions && ctx.lesionRows.length && a.localisation && b.localisation) {
      for (const m of o.methods) {
        // Only the subjects where both maps define the metric, so that the means shown are the ones compared.
        const paired = (x1: number[], x2: number[]) => x1.map((_, i) => i).filter((i) => Number.isFinite(x1[i]) && Number.isFinite(x2[i]));
        const la = a.localisation[m];
        const lb = b.localisation[m];
        const ip = paired(la.pointing, lb.pointing);
        const ie = paired(la.energy, lb.energy);
        const pick = (v: number[], idx: number[]) => idx.map((i) => v[i]);
        const mean = (v: number[]) => (v.length ? v.reduce((p, q) => p + q, 0) / v.length : NaN);
        const what = `${METHOD_NAMES[m]} on ${ctx.lesions.source === 'cardiac-scar' ? 'scar' : 'fracture'} subjects`;
        const text = `${what}: pointing game ${pick(la.pointing, ip).filter((v) => v === 1).length}/${ip.length} (${a.label}) vs ${pick(lb.pointing, ip).filter((v) => v === 1).length}/${ip.length} (${b.label}); mean energy inside the boxes ${f3(mean(pick(la.energy, ie)))} vs ${f3(mean(pick(lb.energy, ie)))} over ${ie.length} subjects (box area ${f3(summarize(x.areaFraction[a.label]).mean)} of the image)`;
        if (Math.min(ip.length, ie.length) < MIN_PAIRED) {
          out.push(`${text}: too few subjects (at least ${MIN_PAIRED} are needed) to call a difference.`);
          continue;
        }
        const hit = meanDifference(pick(la.pointing, ip), pick(lb.pointing, ip), reps, o.seed + 2);
        const en = meanDifference(pick(la.energy, ie), pick(lb.energy, ie), reps, o.seed + 3);
        const claims: string[] = [];
        if (above(hit)) claims.push(`${a.label} points into the box more often`);
        if (below(hit)) claims.push(`${b.label} points into the box more often`);
        if (above(en)) claims.push(`${a.label} puts more of its attribution inside`);
        if (below(en)) claims.push(`${b.label} puts more of its attribution inside`);
        out.push(`${text}: ${claims.length ? claims.join('; ') : 'no difference (intervals include 0)'}.`);
      }
    }
    if (a.latent && b.latent) {
      out.push(`Shared latent space: image→tabular top-1 retrieval ${f3(a.latent.retrieval.imageToTabular.top1)} (${a.label}) vs ${f3(b.latent.retrieval.imageToTabular.top1)} (${b.label}), chance ${f3(1 / a.latent.rows)}; alignment ${f3(a.latent.alignment)} vs ${f3(b.latent.alignment)} (lower: paired projections closer).`);
    }
  }
  if (!ctx.lesions) out.push('The cohort records no lesion regions, so localisation is not measured.');
  else if (!ctx.lesionRows.length) out.push('No test subject has a lesion in truth.json, so localisation is not measured.');
  for (const r of runs) out.push(...deletionVsRandom(r.label, r.faithfulness, o.methods, reps, o.seed + 4));
  if (o.sanityImages > 0) {
    for (const r of runs) {
      const last = r.sanity!.stages[r.sanity!.stages.length - 1];
      const parts = o.methods.map((m) => {
        const s = r.sanity!.methods[m].find((st) => st.stage === last)!;
        return `${METHOD_NAMES[m]} ${f2(summarize(s.abs).median)}`;
      });
      out.push(`Sanity check, ${r.label}: median Spearman ρ (absolute maps) between the original and the fully randomised encoder's maps: ${parts.join(', ')} (near 1: the map barely depends on the weights).`);
    }
  }
  return out;
}

function curveData(runs: RunAnalysis[], mode: 'deletion' | 'insertion', method: string): Record<string, unknown>[] {
  return runs.flatMap((r) => [method, 'random'].flatMap((m) => {
    const c = r.faithfulness[m];
    const y = mode === 'deletion' ? c.meanDeletion : c.meanInsertion;
    return c.x.map((xv, k) => ({ fraction: xv, score: y[k], line: `${r.label} · ${METHOD_NAMES[m]}` })).filter((d) => Number.isFinite(d.score));
  }));
}

export async function buildCompareReport(file: string, ctx: CompareContext, runs: RunAnalysis[], x: CrossRun, summary: string[], tabular: { features: string[]; runs: Record<string, (number | null)[]> } | null): Promise<void> {
  const o = ctx.options;
  const labels = runs.map((r) => r.label);
  const sections: Section[] = [];
  sections.push({
    heading: 'Runs and setup',
    text: `Cohort ${ctx.cohort.name} (${ctx.cohort.dir}), test split. Target: ${o.target}. Attribution methods: ${o.methods.map((m) => METHOD_NAMES[m]).join(', ')} on the first ${ctx.rows.length} test subjects; CKA, latent-space metrics, tabular IG and decodability on the first ${ctx.analysisRows.length}. IG: ${o.steps} Gauss–Legendre steps, zero baseline; GradCAM layer ${o.layer}. Definitions: docs/explain.md, "Comparing runs".`,
    table: {
      columns: ['run', 'mode', 'arch', 'image size', 'tabular features', 'directory'],
      rows: runs.map((r) => [r.label, r.config.mode, r.config.model.arch, r.imageSize, r.prep ? r.prep.columns.length : 0, r.dir]),
    },
  });
  sections.push({ heading: 'Why one run may be better', text: summary });

  const ckaSection: Section = {
    heading: 'Representation similarity (CKA)',
    text: `Centred kernel alignment (Kornblith et al. 2019) between the runs' pooled image embeddings of the same ${ctx.analysisRows.length} test images; RBF with σ = 0.5 × the median pairwise distance.`,
    table: { columns: ['run A', 'run B', 'linear CKA', 'RBF CKA'], rows: x.cka.map((c) => [c.a, c.b, f3(c.linear), f3(c.rbf)]) },
  };
  if (runs.length > 2) {
    const value = (a: string, b: string) => (a === b ? 1 : (x.cka.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a))?.linear ?? null));
    ckaSection.charts = [heatmap({ title: 'Linear CKA', rows: labels, cols: labels, values: labels.map((a) => labels.map((b) => value(a, b))), domain: [0, 1] })];
  }
  sections.push(ckaSection);

  sections.push({
    heading: 'Attribution agreement between runs',
    text: `Spearman rank correlation between two runs' maps of the same image (maps reduced over channels by Σ|a|${x.comparisonSize < Math.max(...runs.map((r) => r.imageSize)) ? `, resized to ${x.comparisonSize}×${x.comparisonSize}` : ''}), summarised over the ${ctx.rows.length} images: median [first quartile, third quartile].`,
    table: {
      columns: ['method', 'run A', 'run B', 'median ρ [IQR]', 'images'],
      rows: o.methods.flatMap((m) => x.agreement[m].map((p) => [METHOD_NAMES[m], p.a, p.b, medIqr(p), p.n])),
    },
  });

  const faithCharts: VegaLiteSpec[] = [];
  for (const mode of ['deletion', 'insertion'] as const) {
    const data = curveData(runs, mode, o.methods[0]);
    if (data.length) faithCharts.push(lineChart({ title: `${mode === 'deletion' ? 'Deletion' : 'Insertion'}: mean normalised score, ${METHOD_NAMES[o.methods[0]]} vs random order`, x: 'fraction', y: 'score', series: 'line', data, xTitle: 'fraction of pixels', yTitle: '(F − F(reference)) / (F(x) − F(reference))' }));
  }
  sections.push({
    heading: 'Faithfulness: deletion and insertion',
    text: `RISE protocol: pixels in decreasing order of Σ_c|a|, ${Math.ceil((runs[0].imageSize ** 2) / o.perturbSteps)} per step at ${runs[0].imageSize} px. Deletion sets them to 0 in the normalised space (the training mean intensity); insertion starts from the image blurred with σ = ${formatNumber(o.insertionBlur)} × its size and copies them back. Each curve is normalised to (F − F(reference)) / (F(x) − F(reference)) and integrated over the fraction of pixels (trapezoid). Deletion: lower is better; insertion: higher is better. Images where F(x) ≈ F(reference) are excluded.`,
    charts: faithCharts,
    table: {
      columns: ['run', 'method', 'deletion AUC median [IQR]', 'insertion AUC median [IQR]', 'excluded (del / ins)'],
      rows: runs.flatMap((r) => [...o.methods, 'random'].map((m) => {
        const f = r.faithfulness[m];
        return [r.label, METHOD_NAMES[m], medIqr(summarize(f.deletion)), medIqr(summarize(f.insertion)), `${f.deletion.filter((v) => !Number.isFinite(v)).length} / ${f.insertion.filter((v) => !Number.isFinite(v)).length}`] as Cell[];
      })),
    },
  });

  if (ctx.lesions && ctx.lesionRows.length) {
    const lesions = ctx.lesions;
    sections.push({
      heading: 'Localisation on known lesions',
      text: `The first ${ctx.lesionRows.length} test subjects with a lesion (up to n; those among the attributed images reuse their maps): ${lesions.description}. Pointing game: the map's largest Σ_c|a| pixel lies inside the box(es) (maps that are zero everywhere do not count). Energy: the fraction of Σ_c|a| inside. A map spread evenly would put the box's area fraction inside.`,
      table: {
        columns: ['run', 'method', 'pointing hits', 'energy inside: mean', 'median [IQR]', 'box area fraction'],
        rows: runs.flatMap((r) => o.methods.map((m) => {
          const l = r.localisation![m];
          return [r.label, METHOD_NAMES[m], `${l.pointing.filter((v) => v === 1).length}/${l.pointing.filter(Number.isFinite).length}`, f3(summarize(l.energy).mean), medIqr(summarize(l.energy)), f3(summarize(x.areaFraction[r.label]).mean)] as Cell[];
        })),
      },
    });
  } else if (ctx.lesions) {
    sections.push({ heading: 'Localisation on known lesions', text: `Not measured: no test subject of ${ctx.cohort.dir} has a lesion (${ctx.lesions.description}).` });
  } else {
    sections.push({ heading: 'Localisation on known lesions', text: `Not measured: ${ctx.cohort.dir} records no lesion regions in its truth.json (the synthetic cardiac cohort's scar boxes and the Morpho-MNIST fracture cuts are the supported sources).` });
  }

  if (o.sanityImages > 0) {
    const data = runs.flatMap((r) => o.methods.flatMap((m) => r.sanity!.methods[m].map((s, k) => ({ stage: k + 1, rho: summarize(s.abs).median, line: `${r.label} · ${METHOD_NAMES[m]}` })).filter((d) => Number.isFinite(d.rho))));
    sections.push({
      heading: 'Sanity check: cascading randomisation',
      text: `Adebayo et al. (2018): the image encoder's layers are re-initialised from the top down (${runs[0].sanity!.stages.join(' → ')}; each stage includes those above it), the attributions are recomputed on the first ${Math.min(o.sanityImages, ctx.rows.length)} images, and compared with the original by Spearman ρ of Σ_c a (raw) and Σ_c |a| (abs). A method whose maps stay similar while the weights are destroyed explains the input more than the model.`,
      charts: data.length ? [lineChart({ title: 'Median Spearman ρ (abs maps) vs stages randomised', x: 'stage', y: 'rho', series: 'line', data, xTitle: `stages randomised (1 = ${runs[0].sanity!.stages[0]})`, yTitle: 'median ρ' })] : [],
      table: {
        columns: ['run', 'method', 'randomised down to', 'ρ raw: median [IQR]', 'ρ abs: median [IQR]'],
        rows: runs.flatMap((r) => o.methods.flatMap((m) => r.sanity!.methods[m].map((s) => [r.label, METHOD_NAMES[m], s.stage, medIqr(summarize(s.raw)), medIqr(summarize(s.abs))] as Cell[]))),
      },
    });
  }

  if (tabular) {
    const mm = runs.filter((r) => r.tabular);
    const order = tabular.features.map((f, j) => ({ f, j, top: Math.max(...mm.map((r) => tabular.runs[r.label][j] ?? -Infinity)) })).sort((p, q) => q.top - p.top);
    sections.push({
      heading: 'Tabular feature importance (Integrated Gradients)',
      text: `Mean |tabular IG| per feature over ${ctx.analysisRows.length} test rows, target: each row's similarity to its own image (a feature's missingness indicator is added to it). Blank: the run was not trained on the feature. Sorted by the largest value across runs. Values of different runs are on their own scales.`,
      table: { columns: ['feature', ...mm.map((r) => r.label)], rows: order.map(({ f, j }) => [f, ...mm.map((r) => { const v = tabular.runs[r.label][j]; return v === null ? '' : formatNumber(v); })]) },
    });
  }

  const latent = runs.filter((r) => r.latent);
  if (latent.length) {
    sections.push({
      heading: 'Shared latent space',
      text: `On ${ctx.analysisRows.length} test pairs, with L2-normalised image and tabular projections: retrieval accuracy (the own partner among the most similar 1 or 5 by cosine; chance ${f3(1 / ctx.analysisRows.length)} and ${f3(Math.min(1, 5 / ctx.analysisRows.length))}), alignment E‖u − v‖² (lower: pairs closer) and uniformity log E exp(−2‖u − u'‖²) over distinct pairs of one modality (lower: more spread), Wang & Isola (2020).`,
      table: {
        columns: ['run', 'image→tabular top-1', 'top-5', 'tabular→image top-1', 'top-5', 'alignment', 'uniformity (image)', 'uniformity (tabular)'],
        rows: latent.map((r) => { const l = r.latent!; return [r.label, f3(l.retrieval.imageToTabular.top1), f3(l.retrieval.imageToTabular.top5), f3(l.retrieval.tabularToImage.top1), f3(l.retrieval.tabularToImage.top5), f3(l.alignment), f3(l.uniformity.image), f3(l.uniformity.tabular)]; }),
      },
    });
  }

  const d = x.decodability;
  const pairKey = `${labels[0]}|${labels[1]}`;
  const diffs = d.differences[pairKey];
  const rows = d.features.map((f, j) => ({ f, j, diff: diffs[j] }));
  rows.sort((p, q) => Math.abs(q.diff?.estimate ?? -1) - Math.abs(p.diff?.estimate ?? -1));
  sections.push({
    heading: 'Decodability of tabular features from the image embedding',
    text: `Every cohort feature, on ${d.rows} test subjects (rows with a value), from each run's frozen pooled image embedding: ${d.folds}-fold cross-validated ridge regression (penalty chosen inside each training fold by leave-one-out error). Continuous: out-of-fold R². Categorical: ROC AUC of the class indicator's out-of-fold predictions (one-vs-rest macro average for more than two classes). The last columns: ${labels[0]} − ${labels[1]} with a paired bootstrap 95% interval over rows (the cross-validated predictions held fixed), and whether it is a Benjamini–Hochberg discovery at 5% over the features. Sorted by the size of that difference.`,
    table: {
      columns: ['feature', 'type', 'metric', 'rows', ...labels, `${labels[0]} − ${labels[1]}`, '95% CI', 'BH 5%'],
      rows: rows.map(({ f, j, diff }) => [f.name, f.type, f.metric === 'r2' ? 'R²' : 'AUC', f.n, ...labels.map((l) => f3(d.values[l][j])), diff ? f3(diff.estimate) : '–', diff ? `${f3(diff.lower)} to ${f3(diff.upper)}` : '–', diff ? (diff.discovery ? 'yes' : 'no') : '–']),
    },
  });

  const grids = runs.filter((r) => r.files.grid);
  if (grids.length) {
    sections.push({
      heading: 'Attribution maps',
      text: `Rows: the first ${Math.min(o.gridImages, ctx.rows.length)} attributed test images; columns: the input (channel 0), then ${o.methods.map((m) => METHOD_NAMES[m]).join(', ')} (Σ_c|a| over the input, scaled to each map's maximum).`,
      images: grids.map((r) => ({ src: path.join(o.out, r.files.grid!), caption: r.label })),
    });
  }
  sections.push({
    heading: 'Files',
    text: `metrics.json holds every number above, with per-image values. attributions/<run>/<method>.npy: the raw attributions (float32, N×C×H×W; GradCAM N×1×H×W, upsampled bilinearly). grids/<run>.png: the pictures above.`,
  });
  await writeReport(file, { title: `tabsight compare: ${labels.join(' vs ')}`, subtitle: `${ctx.cohort.name}, test split, target ${o.target}`, sections });
}
