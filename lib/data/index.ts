/** Data readers: NPY, NIfTI, PNG, DICOM and CSV. See docs/data-readers.md. */
export { parseNpyHeader, readNpyHeader, readNpy, writeNpy } from './npy';
export type { NpyDtype, NpyHeader, NpyArray, NpyData } from './npy';
export { readNifti } from './nifti';
export type { ReadNiftiOptions, NiftiSlice } from './nifti';
export { readPng } from './png';
export type { ReadPngOptions, PngImage } from './png';
export { readDicom } from './dicom';
export type { DicomImage, DicomMeta } from './dicom';
export { readCsv, inferColumnType, parseContinuous, isMissing } from './csv';
export type { ReadCsvOptions, CsvTable, ColumnType, InferOptions } from './csv';
export { loadCohort, loadTruth, readCohortConfig } from './cohort';
export type { Cohort, CohortColumn, ColumnData } from './cohort';
export { fitPreprocessor, Preprocessor, encodeLabels } from './preprocess';
export { summarizeCohort, formatSummary } from './validate-cohort';
