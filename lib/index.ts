/** tabsight's public API. */
export * from './errors';
export { native as _native, packageRoot } from './binding';
export * from './augment';
export * from './features';
export * from './export';
export * from './io/safetensors';
export * from './data/morpho';
export * from './data/morpho-perturb';
export * from './data';
export * from './pretrain';
export * from './run';
export { writeFileAtomic, writeFileAtomicSync } from './io/atomic';
export * from './losses';
export * from './eval';
export * from './pipeline';
export * from './synth';
export * from './config';
export * from './study';
