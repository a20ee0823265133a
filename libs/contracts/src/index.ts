export * from './ids';
export * from './time';
export * from './events';
export * from './conversation';
export * from './responses';
export * from './validation';
export * from './tools';
export * from './workspace';
