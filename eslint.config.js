// Lint runs in `npm test` (docs/design.md house style 12). Type-aware rules catch floating promises,
// the classic way an async runtime loses errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The Node globals plain .js/.mjs files (examples, scripts) use.
const NODE_GLOBALS = Object.fromEntries(
  ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'performance', 'fetch'].map((g) => [g, 'readonly']),
);

// The browser globals the web console (console/*.js, plain ES modules run in the page) uses.
const BROWSER_GLOBALS = Object.fromEntries(
  ['window', 'document', 'sessionStorage', 'fetch', 'EventSource', 'URLSearchParams', 'URL', 'ResizeObserver', 'getComputedStyle',
    'Option', 'createImageBitmap', 'performance', 'setTimeout', 'Date', 'console'].map((g) => [g, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'build/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() and describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }],
      }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ignores: ['console/**'], languageOptions: { globals: NODE_GLOBALS } },
  { files: ['console/**/*.js'], languageOptions: { globals: BROWSER_GLOBALS } },
);
