/** Downstream evaluation: metrics with scikit-learn's conventions, the linear probe and MMCL's protocol. */
export {
  rocAuc,
  rocAucOvr,
  accuracy,
  balancedAccuracy,
  r2Score,
  meanAbsoluteError,
  meanSd,
  bootstrapCi,
  bootstrapStatistic,
  quantileSorted,
  type RocAucOvrOptions,
  type MeanSd,
  type BootstrapOptions,
  type BootstrapCi,
} from './metrics';
export {
  pairedTTest,
  holmAdjust,
  studentTCdf,
  studentTQuantile,
  studentTTwoSided,
  regularizedBeta,
  type PairedTTest,
} from './paired';
export {
  fitProbe,
  predictProbe,
  foldStandardization,
  type ProbeKind,
  type ProbeMonitor,
  type ProbeSplit,
  type FitProbeOptions,
  type ProbeModel,
  type ProbePrediction,
  type EpochRecord,
} from './probe';
export {
  labelFractionSubset,
  balanceBySubsampling,
  evaluateProbe,
  type LabelFractionOptions,
  type EvaluateProbeOptions,
  type EvaluateProbeResult,
  type SeedResult,
  type ProbeOptions,
} from './protocol';
