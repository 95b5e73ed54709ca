export * from './cohort-pretrain';
export * from './evaluate';
