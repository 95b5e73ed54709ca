/**
 * Structural equations of the synthetic cardiac cohort (docs/cohorts.md):
 * demographics and risk factors → latent coronary disease and infarct scar →
 * cardiac morphology (volumes, wall thickness, radii per frame) → tabular
 * morphometrics with measurement error, plus leaks, copies, noise columns,
 * MCAR missingness and per-subject scanner parameters. Pure computation;
 * rendering is in cardiac-render.ts, file writing in cardiac.ts.
 *
 * Random streams are separate (model, noise columns, missingness,
 * acquisition, splits; rendering uses one stream per subject), so a change
 * in one part never shifts the numbers of another.
 */
import { FEATURES, MISSING_BLOCKS } from './cardiac-features';
import { Rng } from './rng';

export const STREAM = { model: 1, noise: 2, missing: 3, acquisition: 4, splits: 5, render: 6 } as const;

/** Fraction of the wall lost at full transmurality in the middle of a scar. */
export const THINNING = 0.45;
/** Geometry factor of the bullet model: V = k·π·r²·L. */
export const BULLET = 5 / 6;
/** Frames, in channel order. */
export const FRAMES = ['ED', 'MS', 'ES'] as const;
/** Fraction of the stroke volume already ejected at each frame. */
const EJECTED = [0, 0.6, 1];
/** Sex-specific thresholds of the LV mass index (g/m²) for `hypertrophy`. */
export const HYPERTROPHY_LVMI = { male: 86, female: 69 };
/** Cut points of the NYHA latent: class 1 below the first, 4 above the last. */
export const NYHA_CUTS = [0.1, 1.1, 2.1];

export const ETHNICITY_LEVELS = [
  'white_british', 'irish', 'other_white', 'white_black_caribbean', 'white_black_african', 'white_asian', 'other_mixed',
  'indian', 'pakistani', 'bangladeshi', 'other_asian', 'caribbean', 'african', 'other_black', 'chinese', 'other',
  'arab', 'latin_american', 'do_not_know', 'prefer_not_to_answer',
];
const ETHNICITY_P = [0.8, 0.025, 0.045, 0.003, 0.002, 0.004, 0.004, 0.012, 0.004, 0.001, 0.004, 0.008, 0.006, 0.001,
  0.004, 0.008, 0.002, 0.002, 0.002, 0.004];
const SOUTH_ASIAN = new Set([7, 8, 9]);
const BLACK = new Set([11, 12, 13]);

/** Scanner settings of the four imaging centres (intensity scale and offset, Rician noise σ). */
export const CENTRES = [
  { weight: 0.4, scale: 0.85, offset: 0.02, noise: 0.03 },
  { weight: 0.3, scale: 0.72, offset: 0.06, noise: 0.05 },
  { weight: 0.2, scale: 0.95, offset: 0.0, noise: 0.025 },
  { weight: 0.1, scale: 0.68, offset: 0.04, noise: 0.06 },
];

export interface Scar {
  /** AHA mid segment (7–12) holding the scar centre. */
  segment: number;
  territory: 'LAD' | 'RCA' | 'LCx';
  /** Anatomical angle of the centre: degrees counter-clockwise (on screen) from anterior, septum at 90°. */
  angleDeg: number;
  widthDeg: number;
  /** Scar depth as a fraction of the wall, from the endocardium. */
  transmurality: number;
}

/** What the renderer needs, in millimetres; frames in FRAMES order. */
export interface Heart {
  rEndo: [number, number, number];
  /** Healthy end-diastolic thickness at the centres of segments 7–12 (0°, 60°, … 300°). */
  wallSeg: number[];
  /** Wall-thickening factor G per frame (1 at ED); scar does not thicken. */
  thicken: [number, number, number];
  scar: Scar | null;
  /** RV ellipse per frame: semi-axes along (a) and across (b) the septal axis, centre distance from the LV centre. */
  rv: { a: number[]; b: number[]; dist: number[] };
}

export interface Acquisition {
  centre: number;
  /** Stored pixel = round(255·clamp(scale·v + offset)), v the noisy rendered intensity. */
  scale: number;
  offset: number;
  /** Rician noise σ, in rendered-intensity units (blood pool = 1). */
  noiseSigma: number;
  rotationDeg: number;
  /** Heart (whole scene) shift in mm: x right, y down. */
  shiftMm: [number, number];
  blurSigmaPx: number;
}

export interface Latent {
  cadLatent: number;
  scar: number;
  edv: number;
  esv: number;
  msv: number;
  ef: number;
  lvm: number;
  lvmi: number;
  lengthMm: number;
  wallMeanMm: [number, number, number];
  rvedv: number;
  rvesv: number;
  nyhaLatent: number;
}

export interface Simulation {
  n: number;
  values: Record<string, Float64Array>;
  labels: Record<string, Float64Array>;
  hearts: Heart[];
  acquisition: Acquisition[];
  latent: Latent[];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const clamp = (x: number, lo: number, hi: number) => (x < lo ? lo : x > hi ? hi : x);

/** Signed angular difference a − b in degrees, in (−180, 180]. */
export function angleDiff(a: number, b: number): number {
  let d = (a - b) % 360;
  if (d <= -180) d += 360;
  if (d > 180) d -= 360;
  return d;
}

/** Thinning weight of a scar at angle φ: 1 inside, linear fall-off over 10° beyond the edges. */
export function scarWeight(scar: Scar | null, phiDeg: number): number {
  if (!scar) return 0;
  return clamp((scar.widthDeg / 2 + 5 - Math.abs(angleDiff(phiDeg, scar.angleDeg))) / 10, 0, 1);
}

/** Wall thickness (mm) of `frame` at whole degrees 0 … 359, into `out`. */
export function wallProfile(heart: Heart, frame: number, out: Float64Array = new Float64Array(360)): Float64Array {
  const g = heart.thicken[frame];
  const tr = heart.scar ? heart.scar.transmurality : 0;
  for (let d = 0; d < 360; d++) {
    const k = Math.floor(d / 60);
    const f = (d - 60 * k) / 60;
    const healthy = heart.wallSeg[k] * (1 - f) + heart.wallSeg[(k + 1) % 6] * f;
    const w = tr * scarWeight(heart.scar, d);
    const ed = healthy * (1 - THINNING * w);
    out[d] = ed * (1 + (g - 1) * (1 - w));
  }
  return out;
}

const mean = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
};

/** Simulates n subjects: every feature, label, latent value, heart and scanner setting. */
export function simulate(n: number, seed: number): Simulation {
  const r = new Rng(seed, STREAM.model);
  const v: Record<string, Float64Array> = {};
  for (const f of FEATURES) v[f.name] = new Float64Array(n);
  const labels: Record<string, Float64Array> = {};
  for (const t of ['infarction', 'cad', 'lvef', 'hypertrophy', 'nyha']) labels[t] = new Float64Array(n);
  const hearts: Heart[] = [];
  const latent: Latent[] = [];
  const prof = new Float64Array(360);

  for (let i = 0; i < n; i++) {
    const z = () => r.normal();
    // demographics
    const male = r.bernoulli(0.48);
    const age = clamp(62 + 7.5 * z(), 45, 82);
    const eth = r.categorical(ETHNICITY_P);
    const sa = SOUTH_ASIAN.has(eth) ? 1 : 0;
    const black = BLACK.has(eth) ? 1 : 0;
    const edu = r.categorical([0.35, 0.2, 0.2, 0.15, 0.1]);
    const townsend = clamp(-1.8 + 0.4 * edu + 2.8 * z(), -6.5, 11);
    const occupation = r.categorical(Array.from({ length: 20 }, (_, k) => Math.exp(-0.5 * ((k - 4.5 * edu) / 4) ** 2)));
    const height = (male ? 176 : 163) - 0.1 * (age - 62) + (male ? 6.8 : 6.3) * z();
    const bmi = clamp(26.5 * Math.exp(0.15 * z()) + 0.04 * (age - 62) + 0.5 * male + 0.3 * (edu - 1.5), 16, 55);
    const weight = bmi * (height / 100) ** 2;
    const bsa = Math.sqrt((height * weight) / 3600);
    const waist = 2.3 * bmi + 8 * male + 25 + 4.5 * z();
    const hip = 1.6 * bmi + 58 - 2 * male + 4 * z();
    const grip = (male ? 40 : 25) - 0.25 * (age - 62) + 0.2 * (height - (male ? 176 : 163)) + 5 * z();
    // lifestyle
    const pCur = sigmoid(-2.3 + 0.25 * edu + 0.12 * townsend + 0.2 * male - 0.02 * (age - 62));
    const u = r.uniform();
    const smoking = u < pCur ? 2 : u < pCur + (1 - pCur) * (0.35 + 0.05 * male) ? 1 : 0;
    const packYears = smoking === 0 ? 0 : Math.min(80, Math.exp((smoking === 2 ? 3.0 : 2.5) + 0.55 * z()));
    const alcohol = r.categorical(male ? [0.06, 0.08, 0.1, 0.24, 0.27, 0.25] : [0.11, 0.15, 0.14, 0.27, 0.2, 0.13]);
    const logAct = 7.4 - 0.03 * (bmi - 27) - 0.01 * (age - 62) + 0.8 * z();
    const zAct = (logAct - 7.4) / 0.8;
    const activity = Math.exp(logAct);
    const fev1 = (male ? 3.4 : 2.5) - 0.03 * (age - 62) + 0.03 * (height - (male ? 176 : 163)) - 0.008 * packYears + 0.4 * z();
    // history and metabolism
    const famHist = r.bernoulli(0.3);
    const diabetes = r.bernoulli(sigmoid(-3.3 + 0.14 * (bmi - 27) + 0.04 * (age - 62) + 0.4 * male + 0.9 * sa + 0.3 * black - 0.15 * zAct));
    const hba1c = clamp(35 + 0.08 * (age - 62) + 0.25 * (bmi - 27) + diabetes * (16 + 6 * Math.abs(z())) + 3 * z(), 20, 120);
    const glucose = clamp(4.9 + 0.03 * (bmi - 27) + 2.5 * diabetes + 0.7 * z(), 2.5, 25);
    const ldl = clamp(3.5 + 0.01 * (age - 62) - 0.1 * male + 0.75 * z(), 0.8, 7.5);
    const hdl = clamp(1.55 - 0.3 * male - 0.02 * (bmi - 27) + 0.04 * alcohol - 0.06 * (smoking === 2 ? 1 : 0) + 0.3 * z(), 0.5, 3.2);
    const tg = Math.exp(Math.log(1.4) + 0.03 * (bmi - 27) + 0.12 * male + 0.3 * diabetes + 0.45 * z());
    const tc = ldl + hdl + tg / 2.2 + 0.1 * z();
    const crp = Math.exp(0.3 + 0.07 * (bmi - 27) + 0.3 * (smoking === 2 ? 1 : 0) + 0.9 * z());
    const creat = 62 + 16 * male + 0.3 * (age - 62) + 10 * z();
    const sbp = clamp(138 + 0.55 * (age - 62) + 0.8 * (bmi - 27) + 4 * male + 5 * black + 0.8 * (alcohol - 2.5) + 16 * z(), 85, 230);
    const dbp = clamp(82 + 0.45 * (sbp - 138) - 0.15 * (age - 62) + 0.3 * (bmi - 27) + 7 * z(), 45, 130);
    const hr = clamp(69 - 4 * zAct + 2 * diabetes + 1.5 * (smoking === 2 ? 1 : 0) + 0.2 * (bmi - 27) + 9 * z(), 40, 120);
    const highBp = r.bernoulli(sigmoid(-1.5 + 0.08 * (sbp - 140) + 0.03 * (age - 62)));
    const antiHt = highBp ? r.bernoulli(0.75) : 0;
    // latent coronary disease and infarct scar
    const cadLogit = -2.45 + 0.065 * (age - 62) + 0.85 * male + 0.02 * packYears + 0.45 * (smoking === 2 ? 1 : 0) + 0.8 * diabetes
      + 0.55 * (ldl - 3.5) - 1.0 * (hdl - 1.45) + 0.018 * (sbp - 138) + 0.55 * famHist + 0.7 * sa + 0.25 * Math.log(crp) - 0.2 * zAct;
    const cadL = r.bernoulli(sigmoid(cadLogit));
    const scarOn = r.bernoulli(cadL ? 0.33 : 0.004);
    let scar: Scar | null = null;
    if (scarOn) {
      const terr = r.categorical([0.5, 0.3, 0.2]);
      const lo = [-15, 105, 225][terr];
      const angleDeg = (((lo + 90 * r.uniform()) % 360) + 360) % 360;
      scar = {
        segment: 7 + Math.floor((((angleDeg + 30) % 360) + 360) % 360 / 60),
        territory: (['LAD', 'RCA', 'LCx'] as const)[terr],
        angleDeg,
        widthDeg: r.between(40, 110),
        transmurality: r.between(0.3, 1.0),
      };
    }
    const extent = scar ? (scar.widthDeg / 360) * scar.transmurality : 0;
    const statin = r.bernoulli(sigmoid(-2.5 + 0.6 * (ldl - 3.5) + 0.05 * (age - 62) + 1.8 * cadL + 0.8 * diabetes));
    const chest = r.categorical(cadL ? [0.5, 0.4, 0.1] : [0.88, 0.09, 0.03]);
    const cad = cadL || scarOn ? 1 : 0;
    const heartAttack = r.bernoulli(scarOn ? 0.97 : 0.003);
    const angina = r.bernoulli(cad ? 0.95 : 0.01);
    // morphology
    const edvBase = bsa * (68 + 9 * male - 0.35 * (age - 62) + 4 * zAct) * Math.exp(0.09 * z());
    const edv = edvBase * (1 + 0.5 * extent);
    const lengthMm = 86 * Math.cbrt(edv / 140) * Math.exp(0.03 * z());
    const ef = clamp(61 + 2.5 * (1 - male) - 0.08 * (age - 62) + 0.8 * zAct - 2.5 * cadL - 55 * extent + 4.5 * z(), 15, 80);
    const esv = edv * (1 - ef / 100);
    const vols = EJECTED.map((e) => edv - e * (edv - esv));
    const lens = EJECTED.map((e) => lengthMm * (1 - 0.14 * (ef / 60) * e));
    const rEndo = vols.map((vol, f) => Math.sqrt((vol * 1000) / (BULLET * Math.PI * lens[f]))) as [number, number, number];
    const t0 = clamp(6.6 + 1.1 * male + 0.045 * (sbp - 138) + 0.015 * (age - 62) + 0.5 * black + 0.4 * diabetes + 0.8 * z(), 4.5, 16);
    const septal = 0.003 * Math.max(0, sbp - 138);
    const wallSeg = [0, 0.08 + septal, 0.1 + septal, -0.02, -0.06, -0.04].map((d) => t0 * (1 + d + 0.04 * z()));
    const heart: Heart = { rEndo, wallSeg, thicken: [1, 1, 1], scar, rv: { a: [], b: [], dist: [] } };
    // systolic thickening: the myocardial ring area scales with L_ED / L_f; scar does not thicken
    wallProfile(heart, 0, prof);
    const tr = scar ? scar.transmurality : 0;
    let m1 = 0, m2 = 0, ma = 0, mta = 0, maa = 0;
    for (let d = 0; d < 360; d++) {
      const t = prof[d];
      const a = t * (1 - tr * scarWeight(scar, d));
      m1 += t / 360; m2 += (t * t) / 360; ma += a / 360; mta += (t * a) / 360; maa += (a * a) / 360;
    }
    const ringEd = rEndo[0] * m1 + m2 / 2; // ring area / 2π
    for (const f of [1, 2]) {
      const target = (ringEd * lens[0]) / lens[f];
      const A = maa / 2, B = rEndo[f] * ma + mta, Cc = rEndo[f] * m1 + m2 / 2 - target;
      heart.thicken[f] = 1 + (-B + Math.sqrt(B * B - 4 * A * Cc)) / (2 * A);
    }
    const wallMean = [0, 1, 2].map((f) => mean(wallProfile(heart, f, prof))) as [number, number, number];
    const vMyo = BULLET * (2 * Math.PI * ringEd * (lengthMm + m1) + Math.PI * rEndo[0] ** 2 * m1);
    const lvm = (1.05 * vMyo) / 1000;
    const lvmi = lvm / bsa;
    wallProfile(heart, 0, prof);
    const segMeans = [0, 1, 2, 3, 4, 5].map((k) => {
      let s = 0;
      for (let d = -30; d < 30; d++) s += prof[(k * 60 + d + 360) % 360];
      return s / 60;
    });
    // right ventricle
    const rvedv = edvBase * (1.08 + 0.06 * male) * Math.exp(0.08 * z());
    const rvef = clamp(56 + 0.35 * (ef - 60) + 4 * z(), 25, 80);
    const rvesv = rvedv * (1 - rvef / 100);
    for (let f = 0; f < 3; f++) {
      const vol = rvedv - EJECTED[f] * (rvedv - rvesv);
      const area = (vol * 1000) / (0.75 * lens[f]);
      const a = Math.sqrt(area / (1.8 * Math.PI));
      heart.rv.a.push(a);
      heart.rv.b.push(1.8 * a);
      heart.rv.dist.push(rEndo[f] + wallMean[f] + 0.2 * a);
    }
    // symptoms
    const nyhaL = 0.09 * (55 - ef) + 0.035 * (age - 62) + 0.06 * (bmi - 27) - 0.35 * zAct + z();
    const breath = r.bernoulli(sigmoid(-2.2 + 1.1 * nyhaL));

    // measured morphometrics
    const lvedv = edv * (1 + 0.025 * z());
    const lvesv = esv * (1 + 0.035 * z());
    const lvedd = 2 * rEndo[0] * (1 + 0.02 * z());
    const lvesd = 2 * rEndo[2] * (1 + 0.025 * z());
    const lvmMeas = lvm * (1 + 0.03 * z());
    const rvedvM = rvedv * (1 + 0.03 * z());
    const rvesvM = rvesv * (1 + 0.04 * z());
    const wt = segMeans.map((s) => Math.max(1, s + 0.3 * z()));
    const set: Record<string, number> = {
      age, sex: male, ethnicity: eth, education: edu, townsend, occupation, height, weight, bmi, bsa,
      waist_circumference: waist, hip_circumference: hip, grip_strength: grip, smoking_status: smoking, pack_years: packYears,
      alcohol_frequency: alcohol, physical_activity: activity, fev1, family_history_heart: famHist, diabetes,
      high_bp_diagnosed: highBp, antihypertensive: antiHt, statin, chest_pain: chest, breathlessness: breath,
      heart_attack_diagnosed: heartAttack, angina_diagnosed: angina, hba1c, glucose, ldl, hdl, triglycerides: tg,
      total_cholesterol: tc, crp, creatinine: creat, systolic_bp: sbp, diastolic_bp: dbp, heart_rate: hr,
      lvedv, lvesv, lvsv: lvedv - lvesv, lvef: (100 * (lvedv - lvesv)) / lvedv, lvco: ((lvedv - lvesv) * hr) / 1000,
      lvm: lvmMeas, rvedv: rvedvM, rvesv: rvesvM, rvsv: rvedvM - rvesvM, rvef: (100 * (rvedvM - rvesvM)) / rvedvM,
      lvedvi: lvedv / bsa, lvesvi: lvesv / bsa, lvmi: lvmMeas / bsa, rvedvi: rvedvM / bsa, lvedd, lvesd,
      fractional_shortening: (100 * (lvedd - lvesd)) / lvedd, wt_mean: mean(wt),
      wall_thickening: 100 * (wallMean[2] / wallMean[0] - 1) + 3 * z(), lvm_lvedv: lvmMeas / lvedv,
      lvef_echo: ef + 1.5 * z(),
    };
    wt.forEach((x, k) => (set[`wt_seg${7 + k}`] = x));
    for (const [k, x] of Object.entries(set)) v[k][i] = x;
    labels.infarction[i] = scarOn;
    labels.cad[i] = cad;
    labels.lvef[i] = ef;
    labels.hypertrophy[i] = lvmi > (male ? HYPERTROPHY_LVMI.male : HYPERTROPHY_LVMI.female) ? 1 : 0;
    labels.nyha[i] = 1 + NYHA_CUTS.filter((c) => nyhaL > c).length;
    hearts.push(heart);
    latent.push({
      cadLatent: cadL, scar: scarOn, edv, esv, msv: vols[1], ef, lvm, lvmi, lengthMm, wallMeanMm: wallMean, rvedv, rvesv, nyhaLatent: nyhaL,
    });
  }
  const acquisition = simulateAcquisition(n, seed);
  acquisition.forEach((a, i) => (v.imaging_centre[i] = a.centre));
  addNoiseColumns(v, n, seed);
  addCopies(v, n, seed);
  applyMissing(v, n, seed);
  return { n, values: v, labels, hearts, acquisition, latent };
}

function simulateAcquisition(n: number, seed: number): Acquisition[] {
  const r = new Rng(seed, STREAM.acquisition);
  const out: Acquisition[] = [];
  for (let i = 0; i < n; i++) {
    const centre = r.categorical(CENTRES.map((c) => c.weight));
    const c = CENTRES[centre];
    out.push({
      centre,
      scale: c.scale * Math.exp(0.05 * r.normal()),
      offset: Math.max(0, c.offset + 0.01 * r.normal()),
      noiseSigma: c.noise * Math.exp(0.15 * r.normal()),
      rotationDeg: r.between(-25, 25),
      shiftMm: [clamp(5 * r.normal(), -10, 10), clamp(5 * r.normal(), -10, 10)],
      blurSigmaPx: r.between(0.3, 0.7),
    });
  }
  return out;
}

function addNoiseColumns(v: Record<string, Float64Array>, n: number, seed: number): void {
  const r = new Rng(seed, STREAM.noise);
  const zipf = Array.from({ length: 20 }, (_, k) => 1 / (k + 1));
  for (let i = 0; i < n; i++) {
    v.noise_c01[i] = r.normal();
    v.noise_c02[i] = 10 + 3 * r.normal();
    v.noise_c03[i] = r.normal();
    v.noise_c04[i] = -2 + 0.5 * r.normal();
    v.noise_c05[i] = Math.exp(0.7 * r.normal());
    v.noise_c06[i] = Math.exp(1 + 0.3 * r.normal());
    v.noise_c07[i] = 100 * r.uniform();
    v.noise_c08[i] = (r.bernoulli(0.5) ? 2 : -2) + 0.5 * r.normal();
    v.sleep_duration[i] = clamp(7 + 1.1 * r.normal(), 3, 12);
    v.noise_k01[i] = r.bernoulli(0.3);
    v.noise_k02[i] = r.int(3);
    v.noise_k03[i] = r.categorical([0.55, 0.25, 0.15, 0.05]);
    v.noise_k04[i] = r.int(6);
    v.noise_k05[i] = r.int(12);
    v.noise_k06[i] = r.categorical(zipf);
    v.birth_month[i] = r.int(12);
    v.handedness[i] = r.categorical([0.88, 0.1, 0.02]);
  }
}

/** Exact copies, and near copies with noise σ = sd·√(1/0.98² − 1), so that r ≈ 0.98. */
function addCopies(v: Record<string, Float64Array>, n: number, seed: number): void {
  const r = new Rng(seed, STREAM.noise, 1);
  for (const f of FEATURES) {
    if (!f.of) continue;
    const src = v[f.of];
    if (f.role === 'duplicate') {
      v[f.name].set(src);
      continue;
    }
    const m = mean(src);
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (src[i] - m) ** 2;
    const sigma = Math.sqrt(ss / Math.max(1, n - 1)) * Math.sqrt(1 / 0.98 ** 2 - 1);
    for (let i = 0; i < n; i++) v[f.name][i] = src[i] + sigma * r.normal();
  }
}

/** MCAR: per-column rates and per-subject blocks; exact duplicates follow their source. */
function applyMissing(v: Record<string, Float64Array>, n: number, seed: number): void {
  const r = new Rng(seed, STREAM.missing);
  const block: Record<string, Uint8Array> = {};
  for (const [name, b] of Object.entries(MISSING_BLOCKS)) {
    block[name] = new Uint8Array(n);
    for (let i = 0; i < n; i++) block[name][i] = r.bernoulli(b.rate);
  }
  for (const f of FEATURES) {
    if (f.missing === undefined || f.role === 'duplicate') continue;
    const col = v[f.name];
    for (let i = 0; i < n; i++) {
      const gone = typeof f.missing === 'number' ? r.bernoulli(f.missing) : block[f.missing][i];
      if (gone) col[i] = NaN;
    }
  }
  for (const f of FEATURES) {
    if (!f.of) continue;
    const src = v[f.of];
    for (let i = 0; i < n; i++) if (Number.isNaN(src[i])) v[f.name][i] = NaN;
  }
}
