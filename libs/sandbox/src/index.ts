export * from './sandbox-driver';
export * from './executor-client';
export * from './local-driver';
export * from './kubernetes/kubernetes-driver';
export * from './sandbox.module';
export * from './sandbox-manager';
export * from './sandbox-reaper';
export * from './isolation';
