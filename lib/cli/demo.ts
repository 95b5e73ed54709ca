/**
 * `tabsight demo`: a short end-to-end run on generated data whose ground
 * truth is known. Images show a bright square whose side, position and
 * brightness are the tabular row. We pretrain a multimodal (CLIP) encoder
 * and an image-only (SimCLR) one, then ask how well each frozen encoder's
 * embedding predicts every tabular feature on held-out images (ridge R²),
 * against a randomly initialised encoder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { pretrain } from '../pretrain';
import { loadRun, randomRun, Run } from '../run';
import { trainingBar } from './progress';

export interface DemoOptions {
  out: string;
  epochs: number;
  n?: number;
  size?: number;
  log?: (line: string) => void;
}

const FEATURES = ['side', 'top', 'left', 'brightness'];

/** Deterministic toy cohort: images N×1×S×S (uint8) and tabular N×4. */
export function squaresCohort(n: number, size: number, seed = 1) {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const images = new Uint8Array(n * size * size);
  const tabular = new Float32Array(n * FEATURES.length);
  for (let i = 0; i < n; i++) {
    const side = 3 + Math.floor(rand() * (size / 2));
    const y0 = Math.floor(rand() * (size - side));
    const x0 = Math.floor(rand() * (size - side));
    const level = 120 + Math.floor(rand() * 135);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
        images[i * size * size + y * size + x] = inside ? level : Math.floor(rand() * 40);
      }
    }
    const raw = [side / size, y0 / size, x0 / size, level / 255];
    tabular.set(raw.map((v) => (v - 0.4) * 4), i * FEATURES.length);
  }
  return { images, tabular, shape: [n, 1, size, size] as [number, number, number, number] };
}

/** Ridge regression R² on held-out rows, per target column. */
export function ridgeR2(x: Float32Array, d: number, y: Float32Array, k: number, trainRows: number, lambda = 1e-1): number[] {
  const n = x.length / d;
  // Standardise features with train statistics.
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let i = 0; i < trainRows; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / trainRows;
  for (let i = 0; i < trainRows; i++) for (let j = 0; j < d; j++) sd[j] += (x[i * d + j] - mean[j]) ** 2 / trainRows;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) || 1;
  const z = (i: number, j: number) => (x[i * d + j] - mean[j]) / sd[j];
  // Dual form: (K + λI) α = y with K = Z Zᵀ (train rows ≤ features here).
  const m = trainRows;
  const K = new Float64Array(m * m);
  for (let a = 0; a < m; a++) {
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += z(a, j) * z(b, j);
      K[a * m + b] = K[b * m + a] = s / d;
    }
    K[a * m + a] += lambda;
  }
  // Cholesky.
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = K[i * m + j];
      for (let p = 0; p < j; p++) s -= L[i * m + p] * L[j * m + p];
      L[i * m + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / L[j * m + j];
    }
  }
  const r2: number[] = [];
  for (let t = 0; t < k; t++) {
    let ym = 0;
    for (let i = 0; i < m; i++) ym += y[i * k + t] / m;
    const rhs = Float64Array.from({ length: m }, (_, i) => y[i * k + t] - ym);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < i; p++) rhs[i] -= L[i * m + p] * rhs[p];
      rhs[i] /= L[i * m + i];
    }
    for (let i = m - 1; i >= 0; i--) {
      for (let p = i + 1; p < m; p++) rhs[i] -= L[p * m + i] * rhs[p];
      rhs[i] /= L[i * m + i];
    }
    let ssRes = 0;
    let ssTot = 0;
    let testMean = 0;
    for (let i = m; i < n; i++) testMean += y[i * k + t] / (n - m);
    for (let i = m; i < n; i++) {
      let pred = ym;
      for (let a = 0; a < m; a++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += z(i, j) * z(a, j);
        pred += (rhs[a] * s) / d;
      }
      ssRes += (y[i * k + t] - pred) ** 2;
      ssTot += (y[i * k + t] - testMean) ** 2;
    }
    r2.push(1 - ssRes / ssTot);
  }
  return r2;
}

export async function runDemo(options: DemoOptions): Promise<Record<string, number[]>> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const n = options.n ?? 512;
  const size = options.size ?? 32;
  const out = path.resolve(options.out);
  fs.mkdirSync(out, { recursive: true });
  const data = squaresCohort(n, size);
  const trainRows = Math.floor(n * 0.75);
  const train = { data: data.images.subarray(0, trainRows * size * size), shape: [trainRows, 1, size, size] };
  const common = {
    images: train,
    epochs: options.epochs,
    batchSize: 64,
    lr: 1e-3,
    model: { arch: 'resnet18' as const, tabularHidden: 256, projectionHidden: 256, projectionDim: 64 },
    augment: { rotationDeg: 10, cropScale: [0.6, 1] as [number, number] },
  };
  log(`tabsight demo: ${n} generated subjects (${trainRows} for pretraining), ${size}×${size} px, ResNet-18, ${options.epochs} epochs`);
  const runs: Record<string, Run> = {};
  for (const mode of ['multimodal', 'simclr'] as const) {
    const dir = path.join(out, mode);
    if (!fs.existsSync(path.join(dir, 'image_encoder.safetensors'))) {
      fs.rmSync(dir, { recursive: true, force: true });
      const bar = trainingBar(mode);
      await pretrain({
        ...common,
        out: dir,
        mode,
        tabular: mode === 'multimodal' ? { data: data.tabular.subarray(0, trainRows * 4), shape: [trainRows, 4], names: FEATURES } : undefined,
      }, { onProgress: bar.update });
      bar.stop();
    } else {
      log(`${mode}: reusing ${dir}`);
    }
    runs[mode] = await loadRun(dir);
  }
  runs.random = randomRun(runs.multimodal.config, 0);

  const all = { data: data.images, shape: data.shape };
  const results: Record<string, number[]> = {};
  for (const [name, run] of Object.entries(runs)) {
    const emb = await run.embed(all);
    results[name] = ridgeR2(emb, run.featureDim, data.tabular, 4, trainRows);
    run.dispose();
  }
  log('\nHeld-out R² of a ridge probe on frozen embeddings, per tabular feature:');
  log(`${'encoder'.padEnd(12)}${FEATURES.map((f) => f.padStart(12)).join('')}${'mean'.padStart(10)}`);
  for (const [name, r2] of Object.entries(results)) {
    const mean = r2.reduce((a, b) => a + b, 0) / r2.length;
    log(`${name.padEnd(12)}${r2.map((v) => v.toFixed(3).padStart(12)).join('')}${mean.toFixed(3).padStart(10)}`);
  }
  await writeFileAtomic(path.join(out, 'results.json'), JSON.stringify({ features: FEATURES, r2: results }, null, 2) + '\n');
  log(`\nwrote ${path.join(out, 'results.json')}`);
  return results;
}
