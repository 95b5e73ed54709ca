/**
 * Pretraining on a cohort directory: load and validate it, fit the tabular
 * preprocessing on the train split, and pretrain on the train split's images
 * (memory-mapped) and rows. The run keeps preprocessor.json so evaluation
 * and export reuse exactly what was fitted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCohort, type Cohort } from '../data/cohort';
import { encodeLabels, fitPreprocessor } from '../data/preprocess';
import { ConfigError, DataError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { pretrain, type PretrainControl, type PretrainOptions } from '../pretrain';

export interface CohortPretrainOptions extends Omit<PretrainOptions, 'images' | 'tabular' | 'labels' | 'targets' | 'rows' | 'scanImages'> {
  /** The cohort directory (with cohort.yaml). */
  cohort: string;
  /** Tabular features to pretrain with, in order. @default every feature */
  features?: string[];
  /** The task whose labels supervised pretraining (or removeFalseNegatives) uses. */
  labelTask?: string;
}

/** The cohort's image store, checked to be one the native trainer reads. */
export function cohortImageStore(cohort: Cohort): { npy: string } {
  const { dtype, path: file } = cohort.images;
  if (dtype !== 'uint8' && dtype !== 'float16' && dtype !== 'float32') {
    throw new DataError(`Images in ${file} are ${String(dtype)}; tabsight trains on uint8, float16 or float32 stores. Convert it (numpy: a.astype("float32")) and point cohort.yaml at the copy`);
  }
  return { npy: file };
}

export async function pretrainCohort(options: CohortPretrainOptions, control: PretrainControl = {}): Promise<string> {
  const { cohort: dir, features, labelTask, ...rest } = options;
  const cohort = await loadCohort(dir, { features });
  const mode = rest.mode ?? 'multimodal';
  // An images-only cohort can pretrain without tabular data (simclr, supervised).
  const prep = mode === 'multimodal' || cohort.tabular.file !== '' ? fitPreprocessor(cohort, features ? { features } : {}) : undefined;
  let rows = cohort.splits.train;
  let labels: Int32Array | undefined;
  let targets: Float32Array | undefined;
  const needLabels = mode === 'supervised' || rest.loss?.removeFalseNegatives === true;
  if (needLabels) {
    if (!labelTask) throw new ConfigError(`mode ${mode} needs a label task (labelTask / --label-task); the cohort's tasks are ${cohort.labels.tasks.map((t) => t.name).join(', ')}`);
    const all = encodeLabels(cohort, labelTask);
    rows = rows.filter((r) => (all instanceof Int32Array ? all[r] >= 0 : Number.isFinite(all[r])));
    if (all instanceof Int32Array) labels = Int32Array.from(rows, (r) => all[r]);
    else if (mode === 'supervised') targets = Float32Array.from(rows, (r) => all[r]);
    else throw new ConfigError(`removeFalseNegatives needs a classification task, and ${labelTask} is a regression task`);
  }
  // The train split's rows are the marginals fitPreprocessor already transformed; no second copy.
  const tab = mode !== 'multimodal' || !prep ? undefined : rows === cohort.splits.train && prep.marginals ? prep.marginals : prep.transform(cohort, rows);
  const out = await pretrain({
    ...rest,
    images: cohortImageStore(cohort),
    rows,
    tabular: tab ? { data: tab.data, shape: tab.shape, cardinalities: tab.cardinalities, names: tab.names } : undefined,
    labels,
    targets,
    scanImages: false, // loadCohort scanned the store
    meta: { ...(rest.meta ?? {}), cohort: cohort.dir, cohortName: cohort.name, features: prep?.names ?? [], labelTask: labelTask ?? null, splitSizes: { train: cohort.splits.train.length, val: cohort.splits.val.length, test: cohort.splits.test.length } },
  }, {
    ...control,
    // Rank 0 writes the run's files (every rank fitted the same preprocessor),
    // before training: a run killed at any point never has an encoder without
    // its preprocessor.json. Images-only runs have none.
    beforeTraining: async (dir) => {
      const file = path.join(dir, 'preprocessor.json');
      if (prep) await writeFileAtomic(file, JSON.stringify(prep) + '\n');
      else fs.rmSync(file, { force: true });
      await control.beforeTraining?.(dir);
    },
  });
  return out;
}
