export * from './berth-logger';
export * from './logging.module';
export * from './redact';
export * from './root-logger';
export * from './startup-summary';
