export * from './event-bus';
export * from './event-recorder';
export * from './conversation-status';
export * from './bus.module';
export * from './redis-options';
