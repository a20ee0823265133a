export * from './run-lock';
export * from './run-queue';
export * from './queue.module';
