// Only what a type checker cannot say and this project insists on: no promise left without
// a handler outside the test helpers (background work goes through `supervise`), no
// promise where a callback expects a plain value, no `any`.
import tseslint from 'typescript-eslint';

export default tseslint.config({
  files: ['src/**/*.ts'],
  // Test code (suites, compliance suites, helpers) hands its promises to node:test.
  ignores: ['src/**/*.test.ts', 'src/**/compliance.ts', 'src/**/*-compliance.ts', 'src/testing/**'],
  languageOptions: { parser: tseslint.parser, parserOptions: { project: './tsconfig.json' } },
  plugins: { '@typescript-eslint': tseslint.plugin },
  rules: {
    '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
    '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
    '@typescript-eslint/no-explicit-any': 'error',
  },
});
