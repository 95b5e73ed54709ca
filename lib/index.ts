/** tabsight's public API. */
export * from './errors';
export { native as _native } from './binding';
