export * from './event-bus';
export * from './event-recorder';
export * from './bus.module';
