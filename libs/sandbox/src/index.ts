export * from './sandbox-driver';
export * from './executor-client';
export * from './local-driver';
export { LABEL } from './kubernetes/manifests';
export * from './sandbox.module';
export * from './sandbox-manager';
export * from './sandbox-reaper';
export * from './isolation';
export * from './sandbox-reconciler';
