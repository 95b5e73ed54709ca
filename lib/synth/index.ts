/** Synthetic cohorts with known ground truth. See docs/cohorts.md. */
export { synthCardiac, SYNTH_CARDIAC_VERSION } from './cardiac';
export type { SynthCardiacOptions, SynthCardiacResult } from './cardiac';
export { FEATURES as CARDIAC_FEATURES, TASKS as CARDIAC_TASKS, LATENTS as CARDIAC_LATENTS, taskTruth } from './cardiac-features';
export type { FeatureSpec, FeatureRole, TaskSpec, TaskTruth } from './cardiac-features';
export * from './mnist';
