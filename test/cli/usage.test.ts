// Hostile or mistyped arguments to `perch` (docs/cli.md): a usage error (unknown option, missing
// value, stray argument) exits 2 with a coded line, not PERCH_ERR_INTERNAL and exit 1; a
// --timeout-ms or --url that is not one is refused as such before anything is dialled (0x10 was
// read as 16 ms, 1e99 reported as an unreachable device). No stack trace in any of them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CLI, cleanEnv } from '../helpers/perch-process.js';

function perch(args: string[]): { status: number | null; stderr: string } {
  // A port nobody listens on: a case that slipped through would be unreachable, not a usage error.
  const r = spawnSync(process.execPath, [CLI, ...args], { env: cleanEnv({ PERCH_PORT: '9' }), encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

test('usage errors exit 2 with PERCH_ERR_INVALID_MESSAGE and the command to ask for help', () => {
  const cases: Array<[string[], RegExp]> = [
    [['status', '--bogus'], /Unknown option '--bogus' \(see perch status --help\)/],
    [['status', 'extra'], /Unexpected argument 'extra'/],
    [['status', '--url'], /'--url <value>' argument missing/],
    [['serve', '--bogus'], /Unknown option '--bogus' \(see perch serve --help\)/],
    [['serve', '--config'], /'--config <value>' argument missing/],
  ];
  for (const [args, message] of cases) {
    const r = perch(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^perch: PERCH_ERR_INVALID_MESSAGE: /, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, args.join(' '));
  }
});

test('perch status: a --timeout-ms or --url that is not one is refused before dialling', () => {
  for (const t of ['0x10', '1e99', '99999999999', '-1', '0', '+5', '1.5', ' 7']) {
    const r = perch(['status', `--timeout-ms=${t}`]);
    assert.equal(r.status, 1, `${t}: ${r.stderr}`);
    assert.match(r.stderr, /^perch: PERCH_ERR_INVALID_MESSAGE: --timeout-ms '.*' is not a whole number of milliseconds from 1 to 2147483647\n$/, t);
  }
  const creds = perch(['status', '--url', 'http://admin:s3cret@127.0.0.1:9']);
  assert.equal(creds.status, 1, creds.stderr);
  assert.match(creds.stderr, /^perch: PERCH_ERR_INVALID_MESSAGE: --url must not hold a user name or password/);
  assert.doesNotMatch(creds.stderr, /s3cret/, 'the password is not echoed');
});
