export * from './job-queue';
export * from './leased-loop';
export * from './run-lock';
export * from './run-queue';
export * from './queue.module';
