/**
 * The synthetic cardiac cohort's feature catalogue and causal graph: every
 * tabular column with its role, type, unit and causal parents, the latent
 * nodes, and the tasks. The ground truth in truth.json (which features are
 * relevant to which task, which are image-derivable) is computed from this
 * graph, so it cannot drift from the documentation in docs/cohorts.md.
 * The structural equations themselves live in cardiac-model.ts.
 */

export type FeatureRole =
  | 'risk' // demographics and risk factors: causes in the model
  | 'proxy' // downstream of a risk factor or a latent disease (medication, symptoms)
  | 'correlate' // caused by risk factors, causes nothing
  | 'image' // cardiac morphometrics measured on the images
  | 'leak' // a near copy of a task label
  | 'noise' // independent of everything
  | 'duplicate' // exact copy of another column
  | 'near_duplicate' // copy plus noise, r ≈ 0.98
  | 'acquisition'; // imaging centre: changes the images, causes nothing else

export type MissingBlock = 'blood' | 'rv';

export interface FeatureSpec {
  name: string;
  type: 'continuous' | 'categorical';
  role: FeatureRole;
  group: string;
  /** Continuous: decimals written to the CSV. */
  decimals?: number;
  /** Categorical: number of levels, coded 0 … levels − 1. */
  levels?: number;
  unit?: string;
  /** Causal parents: features, latent nodes (LATENTS) or task labels (`task:<name>`, TASKS). */
  parents: string[];
  /** duplicate / near_duplicate: the source column. */
  of?: string;
  /** MCAR missingness: a rate for this column alone, or a block missing together. */
  missing?: number | MissingBlock;
  /** Image visibility: 'full' = computable from the image alone; 'partial' = partly visible. */
  visible?: 'full' | 'partial';
  description: string;
}

/** Subjects in a block lose every column of the block at once (MCAR per subject). */
export const MISSING_BLOCKS: Record<MissingBlock, { rate: number; description: string }> = {
  blood: { rate: 0.04, description: 'no blood sample: all biochemistry missing' },
  rv: { rate: 0.02, description: 'right-ventricle segmentation failed: all RV measures missing' },
};

const C = (
  name: string, role: FeatureRole, group: string, decimals: number, unit: string, parents: string[], description: string,
  extra: Partial<FeatureSpec> = {},
): FeatureSpec => ({ name, type: 'continuous', role, group, decimals, unit, parents, description, ...extra });
const K = (
  name: string, role: FeatureRole, group: string, levels: number, parents: string[], description: string,
  extra: Partial<FeatureSpec> = {},
): FeatureSpec => ({ name, type: 'categorical', role, group, levels, parents, description, ...extra });

const SEGMENT_NAMES = ['anterior', 'anteroseptal', 'inferoseptal', 'inferior', 'inferolateral', 'anterolateral'];
/** AHA mid-ventricular segments 7–12. */
export const SEGMENTS = [7, 8, 9, 10, 11, 12];

/** Every tabular column, in CSV order (after `id`). */
export const FEATURES: FeatureSpec[] = [
  // demographics and socio-economics
  C('age', 'risk', 'demographics', 1, 'years', [], 'age at imaging'),
  K('sex', 'risk', 'demographics', 2, [], '0 female, 1 male', { visible: 'partial' }),
  K('ethnicity', 'risk', 'demographics', 20, [], 'ethnic background, 20 levels (0 white British; names in truth.levelNames)'),
  K('education', 'risk', 'socioeconomic', 5, [], 'highest qualification, 0 degree … 4 none', { missing: 0.01 }),
  C('townsend', 'risk', 'socioeconomic', 2, 'index', ['education'], 'Townsend deprivation index', { missing: 0.01 }),
  K('occupation', 'correlate', 'socioeconomic', 20, ['education'], 'occupation group, 20 levels'),
  // body size
  C('height', 'risk', 'body_size', 1, 'cm', ['sex', 'age'], 'standing height', { visible: 'partial' }),
  C('weight', 'risk', 'body_size', 1, 'kg', ['bmi', 'height'], 'body weight = bmi·height²', { visible: 'partial' }),
  C('bmi', 'risk', 'body_size', 2, 'kg/m²', ['age', 'sex', 'education'], 'body-mass index'),
  C('bsa', 'risk', 'body_size', 3, 'm²', ['height', 'weight'], 'body surface area (Mosteller)', { visible: 'partial' }),
  C('waist_circumference', 'correlate', 'body_size', 1, 'cm', ['bmi', 'sex'], 'waist circumference', { missing: 0.01 }),
  C('hip_circumference', 'correlate', 'body_size', 1, 'cm', ['bmi', 'sex'], 'hip circumference', { missing: 0.01 }),
  C('grip_strength', 'correlate', 'body_size', 1, 'kg', ['sex', 'age', 'height'], 'hand-grip strength', { missing: 0.02 }),
  // lifestyle
  K('smoking_status', 'risk', 'lifestyle', 3, ['education', 'townsend', 'sex', 'age'], '0 never, 1 previous, 2 current'),
  C('pack_years', 'risk', 'lifestyle', 1, 'pack-years', ['smoking_status'], 'lifetime tobacco exposure', { missing: 0.05 }),
  K('alcohol_frequency', 'risk', 'lifestyle', 6, ['sex'], '0 never … 5 daily', { missing: 0.01 }),
  C('physical_activity', 'risk', 'lifestyle', 0, 'MET-min/week', ['bmi', 'age'], 'self-reported activity', { missing: 0.06 }),
  C('fev1', 'correlate', 'lung', 2, 'L', ['sex', 'age', 'height', 'pack_years'], 'forced expiratory volume in 1 s', { missing: 0.08 }),
  // history, medication, symptoms
  K('family_history_heart', 'risk', 'history', 2, [], 'parent or sibling with heart disease', { missing: 0.02 }),
  K('diabetes', 'risk', 'metabolic', 2, ['bmi', 'age', 'sex', 'ethnicity', 'physical_activity'], 'diabetes diagnosed'),
  K('high_bp_diagnosed', 'proxy', 'history', 2, ['systolic_bp', 'age'], 'high blood pressure diagnosed by doctor'),
  K('antihypertensive', 'proxy', 'medication', 2, ['high_bp_diagnosed'], 'takes blood-pressure medication'),
  K('statin', 'proxy', 'medication', 2, ['ldl', 'age', 'diabetes', 'cad_latent'], 'takes a statin'),
  K('chest_pain', 'proxy', 'symptoms', 3, ['cad_latent'], '0 none, 1 on exertion, 2 at rest'),
  K('breathlessness', 'proxy', 'symptoms', 2, ['nyha_latent'], 'short of breath walking on the level'),
  K('heart_attack_diagnosed', 'leak', 'history', 2, ['task:infarction'], 'heart attack diagnosed by doctor (= infarction label, sensitivity 0.97, false-positive rate 0.003)', { missing: 0.01, visible: 'partial' }),
  K('angina_diagnosed', 'leak', 'history', 2, ['task:cad'], 'angina diagnosed by doctor (= cad label, sensitivity 0.95, false-positive rate 0.01)', { missing: 0.01, visible: 'partial' }),
  // biochemistry (the 'blood' block goes missing together)
  C('hba1c', 'risk', 'metabolic', 1, 'mmol/mol', ['age', 'bmi', 'diabetes'], 'glycated haemoglobin', { missing: 'blood' }),
  C('glucose', 'risk', 'metabolic', 2, 'mmol/L', ['bmi', 'diabetes'], 'random glucose', { missing: 'blood' }),
  C('ldl', 'risk', 'lipids', 2, 'mmol/L', ['age', 'sex'], 'LDL cholesterol', { missing: 'blood' }),
  C('hdl', 'risk', 'lipids', 2, 'mmol/L', ['sex', 'bmi', 'alcohol_frequency', 'smoking_status'], 'HDL cholesterol', { missing: 'blood' }),
  C('triglycerides', 'risk', 'lipids', 2, 'mmol/L', ['bmi', 'sex', 'diabetes'], 'triglycerides', { missing: 'blood' }),
  C('total_cholesterol', 'risk', 'lipids', 2, 'mmol/L', ['ldl', 'hdl', 'triglycerides'], 'ldl + hdl + triglycerides/2.2 + error', { missing: 'blood' }),
  C('crp', 'risk', 'inflammation', 2, 'mg/L', ['bmi', 'smoking_status'], 'C-reactive protein', { missing: 'blood' }),
  C('creatinine', 'correlate', 'renal', 1, 'µmol/L', ['sex', 'age'], 'serum creatinine', { missing: 'blood' }),
  // haemodynamics
  C('systolic_bp', 'risk', 'blood_pressure', 1, 'mmHg', ['age', 'bmi', 'sex', 'ethnicity', 'alcohol_frequency'], 'systolic blood pressure', { visible: 'partial' }),
  C('diastolic_bp', 'risk', 'blood_pressure', 1, 'mmHg', ['systolic_bp', 'age', 'bmi'], 'diastolic blood pressure'),
  C('heart_rate', 'risk', 'blood_pressure', 0, 'bpm', ['physical_activity', 'diabetes', 'smoking_status', 'bmi'], 'resting heart rate'),
  // acquisition
  K('imaging_centre', 'acquisition', 'acquisition', 4, [], 'imaging centre; sets the scanner intensity and noise', { visible: 'partial' }),
  // CMR morphometrics: the 10 UK Biobank phenotypes …
  C('lvedv', 'image', 'lv_volume', 1, 'mL', ['edv'], 'LV end-diastolic volume', { visible: 'full' }),
  C('lvesv', 'image', 'lv_volume', 1, 'mL', ['esv'], 'LV end-systolic volume', { visible: 'full' }),
  C('lvsv', 'image', 'lv_volume', 1, 'mL', ['lvedv', 'lvesv'], 'LV stroke volume = lvedv − lvesv', { visible: 'full' }),
  C('lvef', 'image', 'lv_function', 1, '%', ['lvedv', 'lvesv'], 'LV ejection fraction = 100·lvsv/lvedv', { visible: 'full' }),
  C('lvco', 'image', 'lv_function', 2, 'L/min', ['lvsv', 'heart_rate'], 'LV cardiac output = lvsv·heart_rate/1000', { visible: 'partial' }),
  C('lvm', 'image', 'lv_mass', 1, 'g', ['lv_mass'], 'LV myocardial mass', { visible: 'full' }),
  C('rvedv', 'image', 'rv_volume', 1, 'mL', ['rv_edv'], 'RV end-diastolic volume', { visible: 'full', missing: 'rv' }),
  C('rvesv', 'image', 'rv_volume', 1, 'mL', ['rv_esv'], 'RV end-systolic volume', { visible: 'full', missing: 'rv' }),
  C('rvsv', 'image', 'rv_volume', 1, 'mL', ['rvedv', 'rvesv'], 'RV stroke volume', { visible: 'full', missing: 'rv' }),
  C('rvef', 'image', 'rv_function', 1, '%', ['rvedv', 'rvesv'], 'RV ejection fraction', { visible: 'full', missing: 'rv' }),
  // … indexed to body surface area …
  C('lvedvi', 'image', 'lv_volume', 1, 'mL/m²', ['lvedv', 'bsa'], 'lvedv / bsa', { visible: 'partial' }),
  C('lvesvi', 'image', 'lv_volume', 1, 'mL/m²', ['lvesv', 'bsa'], 'lvesv / bsa', { visible: 'partial' }),
  C('lvmi', 'image', 'lv_mass', 1, 'g/m²', ['lvm', 'bsa'], 'lvm / bsa', { visible: 'partial' }),
  C('rvedvi', 'image', 'rv_volume', 1, 'mL/m²', ['rvedv', 'bsa'], 'rvedv / bsa', { visible: 'partial', missing: 'rv' }),
  // … diameters, regional wall thickness and ratios
  C('lvedd', 'image', 'lv_diameter', 1, 'mm', ['lv_geometry'], 'LV end-diastolic diameter (mid slice)', { visible: 'full' }),
  C('lvesd', 'image', 'lv_diameter', 1, 'mm', ['lv_geometry'], 'LV end-systolic diameter (mid slice)', { visible: 'full' }),
  C('fractional_shortening', 'image', 'lv_diameter', 1, '%', ['lvedd', 'lvesd'], '100·(lvedd − lvesd)/lvedd', { visible: 'full' }),
  ...SEGMENTS.map((s, k) =>
    C(`wt_seg${s}`, 'image', 'wall_thickness', 2, 'mm', ['lv_wall'], `end-diastolic wall thickness, AHA segment ${s} (mid ${SEGMENT_NAMES[k]})`, { visible: 'full' })),
  C('wt_mean', 'image', 'wall_thickness', 2, 'mm', SEGMENTS.map((s) => `wt_seg${s}`), 'mean of wt_seg7 … wt_seg12', { visible: 'full' }),
  C('wall_thickening', 'image', 'wall_thickness', 1, '%', ['lv_wall', 'lv_geometry'], 'systolic wall thickening, 100·(t_ES/t_ED − 1)', { visible: 'full' }),
  C('lvm_lvedv', 'image', 'lv_mass', 3, 'g/mL', ['lvm', 'lvedv'], 'mass-to-volume ratio (concentricity)', { visible: 'full' }),
  // leak of the regression task
  C('lvef_echo', 'leak', 'lv_function', 1, '%', ['lv_ef'], 'echocardiographic LVEF: true LVEF + N(0, 1.5²)', { missing: 0.3, visible: 'full' }),
  // exact and near duplicates of image features
  C('lvedv_dup', 'duplicate', 'lv_volume', 1, 'mL', ['lvedv'], 'exact copy of lvedv', { of: 'lvedv', visible: 'full' }),
  C('lvm_dup', 'duplicate', 'lv_mass', 1, 'g', ['lvm'], 'exact copy of lvm', { of: 'lvm', visible: 'full' }),
  C('lvef_dup', 'duplicate', 'lv_function', 1, '%', ['lvef'], 'exact copy of lvef', { of: 'lvef', visible: 'full' }),
  C('lvesv_alt', 'near_duplicate', 'lv_volume', 1, 'mL', ['lvesv'], 'lvesv + noise (r ≈ 0.98)', { of: 'lvesv', visible: 'full' }),
  C('wt_mean_alt', 'near_duplicate', 'wall_thickness', 2, 'mm', ['wt_mean'], 'wt_mean + noise (r ≈ 0.98)', { of: 'wt_mean', visible: 'full' }),
  C('rvedv_alt', 'near_duplicate', 'rv_volume', 1, 'mL', ['rvedv'], 'rvedv + noise (r ≈ 0.98)', { of: 'rvedv', visible: 'full', missing: 'rv' }),
  C('lvedd_alt', 'near_duplicate', 'lv_diameter', 1, 'mm', ['lvedd'], 'lvedd + noise (r ≈ 0.98)', { of: 'lvedd', visible: 'full' }),
  // pure noise
  C('noise_c01', 'noise', 'noise', 4, '', [], 'N(0, 1)'),
  C('noise_c02', 'noise', 'noise', 4, '', [], 'N(10, 3²)'),
  C('noise_c03', 'noise', 'noise', 4, '', [], 'N(0, 1), 5% missing', { missing: 0.05 }),
  C('noise_c04', 'noise', 'noise', 4, '', [], 'N(−2, 0.5²)'),
  C('noise_c05', 'noise', 'noise', 4, '', [], 'log-normal exp(N(0, 0.7²))'),
  C('noise_c06', 'noise', 'noise', 4, '', [], 'log-normal exp(N(1, 0.3²))'),
  C('noise_c07', 'noise', 'noise', 4, '', [], 'U(0, 100)'),
  C('noise_c08', 'noise', 'noise', 4, '', [], 'bimodal: ±2 + N(0, 0.5²)'),
  C('sleep_duration', 'noise', 'noise', 1, 'h', [], 'N(7, 1.1²), clamped to [3, 12]', { missing: 0.01 }),
  K('noise_k01', 'noise', 'noise', 2, [], 'Bernoulli(0.3)'),
  K('noise_k02', 'noise', 'noise', 3, [], 'uniform over 3 levels, 5% missing', { missing: 0.05 }),
  K('noise_k03', 'noise', 'noise', 4, [], 'skewed over 4 levels'),
  K('noise_k04', 'noise', 'noise', 6, [], 'uniform over 6 levels'),
  K('noise_k05', 'noise', 'noise', 12, [], 'uniform over 12 levels'),
  K('noise_k06', 'noise', 'noise', 20, [], 'Zipf-like over 20 levels'),
  K('birth_month', 'noise', 'noise', 12, [], 'month of birth, 0 January … 11 December'),
  K('handedness', 'noise', 'noise', 3, [], '0 right, 1 left, 2 both'),
];

/** Latent (unobserved) nodes of the causal graph and their parents. */
export const LATENTS: Record<string, { parents: string[]; description: string }> = {
  cad_latent: {
    parents: ['age', 'sex', 'pack_years', 'smoking_status', 'diabetes', 'ldl', 'hdl', 'systolic_bp', 'family_history_heart',
      'ethnicity', 'crp', 'physical_activity'],
    description: 'coronary artery disease (atherosclerosis), before any infarction',
  },
  scar: { parents: ['cad_latent'], description: 'myocardial infarct scar in the imaged mid slice' },
  edv_base: { parents: ['bsa', 'sex', 'age', 'physical_activity'], description: 'LV end-diastolic volume before remodelling' },
  edv: { parents: ['edv_base', 'scar'], description: 'true LV end-diastolic volume' },
  lv_length: { parents: ['edv'], description: 'LV long-axis length (scales with edv^(1/3))' },
  lv_ef: { parents: ['sex', 'age', 'physical_activity', 'cad_latent', 'scar'], description: 'true LV ejection fraction' },
  esv: { parents: ['edv', 'lv_ef'], description: 'true LV end-systolic volume' },
  lv_wall: { parents: ['sex', 'systolic_bp', 'age', 'ethnicity', 'diabetes', 'scar'], description: 'regional wall thickness (scar thins it)' },
  lv_geometry: { parents: ['edv', 'esv', 'lv_ef', 'lv_length'], description: 'cavity radius per frame' },
  lv_mass: { parents: ['lv_wall', 'lv_geometry', 'lv_length'], description: 'true LV mass' },
  rv_edv: { parents: ['edv_base', 'sex'], description: 'true RV end-diastolic volume' },
  rv_ef: { parents: ['lv_ef'], description: 'true RV ejection fraction' },
  rv_esv: { parents: ['rv_edv', 'rv_ef'], description: 'true RV end-systolic volume' },
  nyha_latent: { parents: ['lv_ef', 'age', 'bmi', 'physical_activity'], description: 'heart-failure symptom severity' },
};

export interface TaskSpec {
  name: string;
  type: 'binary' | 'multiclass' | 'regression';
  parents: string[];
  description: string;
}

export const TASKS: TaskSpec[] = [
  { name: 'infarction', type: 'binary', parents: ['scar'], description: '1 if the subject has an infarct scar (ICD-10 I21/I22)' },
  { name: 'cad', type: 'binary', parents: ['cad_latent', 'scar'], description: 'coronary artery disease: cad_latent or infarction (ICD-10 I20–I25)' },
  { name: 'lvef', type: 'regression', parents: ['lv_ef'], description: 'true LV ejection fraction, %' },
  { name: 'hypertrophy', type: 'binary', parents: ['lv_mass', 'bsa', 'sex'], description: 'LV mass index above the sex-specific threshold' },
  { name: 'nyha', type: 'multiclass', parents: ['nyha_latent'], description: 'NYHA class 1–4 from the symptom latent' },
];

export interface TaskTruth {
  type: TaskSpec['type'];
  description: string;
  /** causes ∪ effects ∪ leaks. */
  relevant: string[];
  /** Observed features that enter the task's structural equations, directly or through latent nodes only. */
  causes: string[];
  /** Observed descendants of the task or of its latent causes (any path), except leaks and copies. */
  effects: string[];
  /** Near copies of the label. */
  leaks: string[];
  /** Exact and near duplicates of relevant features. */
  redundant: string[];
}

/**
 * Ground-truth relevance from the graph. causes: walk up from the task
 * through latent nodes; every feature met is a cause (a feature reached only
 * through another observed feature, such as height → bsa, is not).
 * effects: every feature downstream (any path) of the task or of a latent
 * node met on the way up. Duplicates go to `redundant`, leaks to `leaks`.
 */
export function taskTruth(task: TaskSpec): TaskTruth {
  const byName = new Map(FEATURES.map((f) => [f.name, f]));
  const taskNode = (name: string) => `task:${name}`;
  const parentsOf = (node: string): string[] =>
    node.startsWith('task:')
      ? TASKS.find((t) => taskNode(t.name) === node)?.parents ?? []
      : byName.get(node)?.parents ?? LATENTS[node]?.parents ?? [];
  const children = new Map<string, string[]>();
  const nodes = [...FEATURES.map((f) => f.name), ...Object.keys(LATENTS), ...TASKS.map((t) => taskNode(t.name))];
  for (const node of nodes) {
    for (const p of parentsOf(node)) children.set(p, [...(children.get(p) ?? []), node]);
  }
  const start = taskNode(task.name);
  const causes = new Set<string>();
  const upLatent = new Set<string>([start]);
  const stack = [start];
  while (stack.length) {
    for (const p of parentsOf(stack.pop()!)) {
      if (byName.has(p)) causes.add(p);
      else if (!upLatent.has(p)) {
        upLatent.add(p);
        stack.push(p);
      }
    }
  }
  const down = new Set<string>();
  const queue = [...upLatent];
  while (queue.length) {
    for (const c of children.get(queue.pop()!) ?? []) {
      if (!down.has(c)) {
        down.add(c);
        queue.push(c);
      }
    }
  }
  const label = new Set([start, ...task.parents]);
  const leaks: string[] = [];
  const effects: string[] = [];
  for (const f of FEATURES) {
    if (!down.has(f.name) || causes.has(f.name)) continue;
    if (f.role === 'leak' && f.parents.some((p) => label.has(p))) leaks.push(f.name);
    else if (f.role !== 'duplicate' && f.role !== 'near_duplicate') effects.push(f.name);
  }
  const order = (s: Iterable<string>) => {
    const set = new Set(s);
    return FEATURES.map((f) => f.name).filter((n) => set.has(n));
  };
  const relevant = order([...causes, ...effects, ...leaks]);
  const redundant = FEATURES.filter((f) => f.of !== undefined && relevant.includes(f.of)).map((f) => f.name);
  return { type: task.type, description: task.description, relevant, causes: order(causes), effects: order(effects), leaks, redundant };
}
