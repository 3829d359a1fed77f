import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config({ ignores: ['dist/', 'node_modules/', 'bench/results/'] }, js.configs.recommended, ...tseslint.configs.recommended, {
  // Type-aware: the rules below need the types (a promise is only known to be one by its type).
  // projectService finds tsconfig.json, which includes src, test and bench.
  languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  rules: {
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    '@typescript-eslint/no-non-null-assertion': 'off',
    // A promise nobody awaits loses its rejection (an unhandled rejection kills the process) and
    // its ordering; fire-and-forget must be written `void p` with a comment saying why.
    '@typescript-eslint/no-floating-promises': 'error',
    // An async function where a void callback is expected (an event handler, forEach, a timer):
    // its rejection goes nowhere, and `if (promise)` is always true.
    '@typescript-eslint/no-misused-promises': 'error',
  },
});
