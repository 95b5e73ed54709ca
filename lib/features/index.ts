/** Feature statistics: mutual information, conditional MI, redundancy and clustering. */
export {
  mutualInfoRegression,
  mutualInfoClassif,
  conditionalMutualInfo,
  digamma,
  type MutualInfoOptions,
  type ConditionalMutualInfoOptions,
} from './mi';
export {
  pearsonMatrix,
  spearmanMatrix,
  averageRanks,
  varianceInflationFactors,
  conditionNumber,
  correlationClusters,
  type Linkage,
  type CorrelationClusterOptions,
  type CorrelationClusters,
} from './redundancy';
export { KDTree, SortedAxis } from './kdtree';
export { selectFeatures, type Selection, type SelectOptions } from './selectors';
export { searchFeatures } from './search';
