/** Feature-selection studies: the runner, its SQLite store, the statistics and the report. */
export { runStudy, trialName, type StudyOptions, type StudyControl, type StudySummary } from './runner';
export { StudyStore, type Trial, type TrialKey, type TrialStatus, type TrialResults } from './store';
export {
  ALL_FEATURES, IMAGE_ONLY, DEFAULT_SD_FLOOR, objective, primaryMetric, acrossSeedSd, pairedDifferences, pairedCi, nogueiraStability,
  trueImageRelevant, precisionRecallF1,
} from './objective';
export { summarizeStudy, writeStudyReport, type SubsetSummary, type StudySummaryData } from './report';
