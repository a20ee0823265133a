export * from './run-queue';
export * from './queue.module';
