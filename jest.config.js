/** Three projects: fast unit tests, integration tests against an in-process fake runtime, and the
 * end-to-end suite against a real containerd (needs root and the Debian packages the suite installs). */
const tsJest = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };
const common = { testEnvironment: 'node', transform: tsJest, moduleFileExtensions: ['ts', 'js', 'json'] };
// Integration and end-to-end tests run the built command: it is built first when its sources changed.
const runsBuild = { globalSetup: '<rootDir>/test/support/build-if-stale.ts' };
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, ...runsBuild, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...common, ...runsBuild, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
