export * from './registry';
export * from './run-queue-depth';
export * from './exposition';
export * from './tracing';
export * from './tracing.module';
