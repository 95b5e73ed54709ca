/** Feature-selection studies: the runner, its SQLite store, jobs for a scheduler, the statistics and the report. */
export { runStudy, trialName, type StudyOptions, type StudyControl, type StudySummary } from './runner';
export { StudyStore, type Trial, type TrialKey, type TrialStatus, type TrialResults } from './store';
export {
  emitStudyJobs, runStudyTrial, mergeStudy, readStudyJobs, SCHEDULERS, type Scheduler, type EmitOptions, type EmittedStudy, type StudyJobsFile,
  type JobTrial, type TrialResultFile, type TrialRunSummary, type MergeSummary,
} from './jobs';
export { type SlurmOptions } from './slurm';
export {
  ALL_FEATURES, IMAGE_ONLY, DEFAULT_SD_FLOOR, objective, primaryMetric, acrossSeedSd, pairedDifferences, pairedCi, pGreater, everyTaskP, nogueiraStability,
  trueImageRelevant, precisionRecallF1,
} from './objective';
export { summarizeStudy, writeStudyReport, type SubsetSummary, type StudySummaryData } from './report';
