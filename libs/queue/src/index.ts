export * from './job-queue';
export * from './run-lock';
export * from './run-queue';
export * from './queue.module';
