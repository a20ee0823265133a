export * from './registry';
export * from './scraped-gauges';
export * from './exposition';
export * from './tracing';
export * from './tracing.module';
