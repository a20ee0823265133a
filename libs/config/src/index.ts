export * from './berth-config';
export * from './config.module';
export * from './project-root';
export * from './kubernetes-config';
