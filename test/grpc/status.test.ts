// Every PERCH_ERR_* code maps to a gRPC status (docs/grpc.md "Errors"), and the table in the
// docs is the code's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../runtime/base/errors.js';
import { GRPC_STATUS, GRPC_STATUS_OF_HTTP } from '../../runtime/api/grpc/status.js';
import { REPO_ROOT } from '../helpers/paths.js';

test('every HTTP status of ERROR_CODES has a gRPC status', () => {
  for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.ok(GRPC_STATUS_OF_HTTP[status], `${code} (${status})`);
});

test('docs/grpc.md lists the mapping as the code has it', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'grpc.md'), 'utf8');
  const rows = new Map<number, string>();
  for (const line of doc.split('\n')) {
    const m = /^\| (\d{3}) \| `([A-Z_]+)` \((\d+)\) \|/.exec(line);
    if (m) {
      rows.set(Number(m[1]), m[2] as string);
      assert.equal(GRPC_STATUS[m[2] as keyof typeof GRPC_STATUS], Number(m[3]), `number of ${m[2]}`);
    }
  }
  assert.deepEqual(Object.fromEntries(rows), Object.fromEntries(Object.entries(GRPC_STATUS_OF_HTTP).map(([k, v]) => [Number(k), v])));
});
