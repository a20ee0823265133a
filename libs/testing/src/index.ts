// Stand-ins for what cannot run here (a paid LLM), shared by the tests and the benchmarks.
export * from './llm-stub';
export * from './until';
