// glibc's malloc_trim through Perch's own addon (native/malloc-trim.c, runtime/base/malloc-trim.ts,
// docs/reliability.md "Memory after a burst"): `npm run build` compiles it here, and it loads and
// trims; a missing addon is reported, never thrown.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { ADDON_PATH, loadMallocTrim } from '../../runtime/base/malloc-trim.js';

test('the addon built by npm run build loads, and trim() answers a boolean', (t) => {
  // The build skips the addon, with a line on stderr, where there is no C compiler or no Node
  // headers (native/build.mjs): then there is nothing to test, and the test says so.
  if (!existsSync(ADDON_PATH)) return t.skip(`${ADDON_PATH} was not built (no C compiler or no Node headers: see npm run build's output)`);
  const m = loadMallocTrim();
  if (!m.available && /not glibc/.test(m.reason ?? '')) return t.skip(`built, but ${m.reason}`);
  assert.equal(m.available, true, m.reason ?? '');
  assert.equal(m.reason, null);
  assert.equal(typeof m.trim(), 'boolean');
  assert.equal(typeof m.trim(), 'boolean');
});

test('no addon at the path: not available, with the reason, and trim() calls nothing', () => {
  const m = loadMallocTrim(`${ADDON_PATH}.missing`);
  assert.equal(m.available, false);
  assert.match(m.reason ?? '', /not built/);
  assert.equal(m.trim(), false);
});
