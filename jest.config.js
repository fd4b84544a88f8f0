// ts-jest transpiles only (isolatedModules in tsconfig.json): type-checking @pulumi/gcp per test
// file costs ~15 s; `npm run typecheck` runs tsc over everything once instead.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testMatch: ["<rootDir>/tests/**/*.test.ts"],
  moduleFileExtensions: ["ts", "js", "json"],
  testTimeout: 60000,
};
