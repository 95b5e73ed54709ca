/** Explaining encoders: attribution methods on images and tabular rows. */
export {
  integratedGradients,
  saliency,
  gradCam,
  guidedBackprop,
  guidedGradCam,
  noiseTunnel,
  tabularIntegratedGradients,
  integrationPoints,
  IG_METHODS,
  CAM_LAYERS,
  type IgMethod,
  type CamLayer,
  type Attribution,
  type TabularAttribution,
  type AttributionImages,
  type IntegratedGradientsOptions,
  type SaliencyOptions,
  type GradCamOptions,
  type GuidedBackpropOptions,
  type GuidedGradCamOptions,
  type NoiseTunnelOptions,
  type TabularIntegratedGradientsOptions,
  type WrappedMethod,
} from './attribution';
export type { ImageTarget, TabularTarget, CommonTarget, ArrayWithShape, IndexSpec, VectorSpec } from './targets';
export { type AttributionModel, type ModelInput } from './model-source';
export { linearCka, rbfCka, cka, type CkaMatrix, type RbfCkaOptions } from './cka';
export { explainRun, parseExplainTarget, EXPLAIN_METHODS, type ExplainMethod, type ExplainRunOptions, type ExplainRunResult } from './explain-run';
export { compareRuns, type CompareRunsResult } from './compare';
export { COMPARE_METHODS, parseCompareMethods, type CompareMethod, type CompareRunsOptions } from './compare-run';
export { scoreImages, projectPairs, type ScoreImagesOptions, type ProjectPairsOptions, type Projections } from './forward';
export { randomizeWeights, RANDOMIZATION_STAGES, type RandomizationStage, type RandomizeOptions } from './randomize';
export { spearman, retrieval, alignment, uniformity, pointingHit, energyInside, trapezoidAuc } from './compare-metrics';
