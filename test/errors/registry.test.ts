// docs/errors.md and the registry list the same codes with the same statuses and meanings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, PerchError } from '../../runtime/base/errors.js';
import { REPO_ROOT } from '../helpers/paths.js';

test('docs/errors.md lists exactly the registry', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, { status: number; summary: string }>();
  for (const line of doc.split('\n')) {
    const m = /^\| `(PERCH_ERR_[A-Z0-9_]+)` \| (\d+) \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1] as string, { status: Number(m[2]), summary: m[3] as string });
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
  for (const [code, { status, summary }] of Object.entries(ERROR_CODES)) {
    assert.equal(rows.get(code)?.status, status, `${code} status`);
    assert.equal(rows.get(code)?.summary, summary, `${code} meaning`);
  }
});

test('codes are well-formed and statuses are HTTP error statuses', () => {
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^PERCH_ERR_[A-Z0-9_]+$/);
    assert.ok(status >= 400 && status < 600, code);
  }
});

test("a client's error has no stack frames (it is built for every refused frame); Perch's own failures keep theirs", () => {
  const limit = Error.stackTraceLimit;
  const client = new PerchError('PERCH_ERR_SEQUENCE_UNKNOWN', 'no live sequence s1');
  assert.equal(client.stack, 'PerchError: no live sequence s1');
  assert.equal(client.status, 400);
  const internal = new PerchError('PERCH_ERR_INTERNAL', 'a bug');
  assert.match(internal.stack ?? '', /^PerchError: a bug\n\s+at /);
  assert.equal(Error.stackTraceLimit, limit, 'the process-wide limit is left as it was');
});
