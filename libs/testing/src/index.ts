// Stand-ins for what cannot run here (a paid LLM, a Kubernetes API server), shared by the tests and the benchmarks.
export * from './llm-stub';
export * from './local-http';
export * from './mcp-fixtures';
export * from './until';
export * from './local-http';
export * from './kube-fake/fake-kube';
export { restrictedViolation } from './kube-fake/pod-security';
export { strictDecodingError } from './kube-fake/schema';
