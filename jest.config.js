// Jest compiles the TypeScript to CommonJS; the ESM-only dependencies (Nest 12, file-type…) load through
// Node 24's require(esm), which Jest supports with --experimental-vm-modules (see README "Tests").
module.exports = {
  rootDir: __dirname,
  moduleFileExtensions: ['js', 'json', 'ts'],
  testRegex: '.*\\.(spec|e2e-spec)\\.ts$',
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  moduleNameMapper: {
    '^@berth/([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts',
    // A library's second entry (@berth/contracts/executor): its file of that name.
    '^@berth/([a-z-]+)/([a-z-]+)$': '<rootDir>/libs/$1/src/$2.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: { module: 'commonjs', isolatedModules: true, esModuleInterop: true } }],
  },
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testEnvironment: 'node',
  testTimeout: 60000,
};
