// Durations that end up in a Node timer are refused beyond 2^31 - 1 ms (runtime/base/timer-ms.ts).
// Node does not refuse a longer delay: it fires after 1 ms with a warning, so
// `server.shutdownTimeoutMs: 1e12` made every SIGTERM exit 1 at once ("shutdown timed out").
// Every `...Ms` key of the config is tried, so a key added later without a bound fails here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import { MAX_TIMER_MS } from '../../runtime/base/timer-ms.js';
import { loadConfig, parseConfig } from '../../runtime/config/load.js';
import { modelConfigSchema } from '../../runtime/models/model-config.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';

/** Paths of every numeric key ending in Ms in the default config. */
function msPaths(node: unknown, at: string[] = []): string[][] {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return [];
  const out: string[][] = [];
  for (const [k, v] of Object.entries(node)) {
    if (typeof v === 'number' && k.endsWith('Ms')) out.push([...at, k]);
    else out.push(...msPaths(v, [...at, k]));
  }
  return out;
}

function withValue(path: string[], value: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let node = root;
  for (const k of path.slice(0, -1)) node = (node[k] = {}) as Record<string, unknown>;
  node[path[path.length - 1] as string] = value;
  return root;
}

test('every ...Ms key of the config refuses a delay no timer can wait, naming the key', () => {
  const paths = msPaths(loadConfig({ env: {} }));
  assert.ok(paths.length >= 10, `found ${paths.length} keys`);
  for (const path of paths) {
    const name = path.join('.');
    assert.throws(() => parseConfig(withValue(path, MAX_TIMER_MS + 1)), (err: unknown) => {
      assert.ok(err instanceof PerchError && err.code === 'PERCH_ERR_CONFIG_INVALID', String(err));
      assert.ok(err.message.includes(`- ${name}:`), `${name} is named: ${err.message}`);
      return true;
    }, name);
  }
  // The longest wait itself is taken where the key has no tighter bound.
  assert.equal(parseConfig(withValue(['server', 'shutdownTimeoutMs'], MAX_TIMER_MS)).server.shutdownTimeoutMs, MAX_TIMER_MS);
});

test("model.json: sequence.idleTimeoutMs beyond a timer's reach is refused", () => {
  const sequence = (idleTimeoutMs: number): unknown => ({ sequence: { state: [{ input: 'h', output: 'hn' }], idleTimeoutMs } });
  assert.equal(modelConfigSchema.safeParse(sequence(MAX_TIMER_MS)).success, true);
  const bad = modelConfigSchema.safeParse(sequence(MAX_TIMER_MS + 1));
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error?.issues.map((i) => i.path.join('.')), ['sequence.idleTimeoutMs']);
});

test('perch serve with shutdownTimeoutMs 1e12 stops at start with the coded error, no stack', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perch-timer-'));
  try {
    const config = join(dir, 'perch.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data'), server: { port: 0, shutdownTimeoutMs: 1e12 } }));
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', config], { env: cleanEnv(), encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, `${r.stderr}${r.stdout.slice(-1000)}`);
    assert.match(r.stderr, /^perch: PERCH_ERR_CONFIG_INVALID: .*\n {2}- server\.shutdownTimeoutMs: at most 2147483647/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
