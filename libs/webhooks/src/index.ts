export * from './webhook-sender';
export * from './webhook-dispatcher';
export * from './webhooks.module';
