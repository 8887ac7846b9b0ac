import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../runtime/config/load.js';
import { shippedModelsDir } from '../../runtime/config/paths.js';
import { PerchError } from '../../runtime/base/errors.js';

function withFile(content: unknown, fn: (path: string, dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'perch-cfg-'));
  const path = join(dir, 'perch.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  try {
    fn(path, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('config', () => {
  test('no file, no env: the embedded defaults, frozen', () => {
    const c = loadConfig({ env: {}, cwd: '/srv' });
    assert.equal(c.server.host, '127.0.0.1');
    assert.equal(c.server.port, 8080);
    assert.equal(c.models.repository, shippedModelsDir());
    assert.equal(c.dataDir, 'data');
    assert.equal(c.store.outbox.overflow, 'refuse');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.server) && Object.isFrozen(c.store.jobs));
    assert.throws(() => {
      (c.server as { port: number }).port = 1;
    }, TypeError);
  });

  test('file values, relative paths against the file, env wins over the file', () => {
    withFile({ server: { port: 9000, host: '0.0.0.0' }, models: { repository: 'repo' }, dataDir: '/abs/data' }, (path, dir) => {
      const c = loadConfig({ configPath: path, env: { PERCH_PORT: '9100', PERCH_DATA_DIR: 'rel' }, cwd: '/work' });
      assert.equal(c.server.port, 9100);
      assert.equal(c.server.host, '0.0.0.0');
      assert.equal(c.models.repository, join(dir, 'repo'));
      assert.equal(c.dataDir, '/work/rel');
    });
    withFile({}, (path) => {
      const c = loadConfig({ env: { PERCH_CONFIG: path, PERCH_API_TOKEN: 'secret-token', PERCH_LOG_LEVEL: 'debug', PERCH_DEVICE_ID: 'pi-1' } });
      assert.equal(c.server.apiToken, 'secret-token');
      assert.equal(c.log.level, 'debug');
      assert.equal(c.device.id, 'pi-1');
    });
  });

  test('every bad path is reported in one error; unknown keys are rejected', () => {
    withFile({ server: { port: 'eighty', colour: 'red' }, log: { level: 'loud' }, store: { jobs: { outboxSweep: 'every minute' } }, extra: 1 }, (path) => {
      assert.throws(
        () => loadConfig({ configPath: path, env: {} }),
        (e: PerchError) => {
          assert.equal(e.code, 'PERCH_ERR_CONFIG_INVALID');
          for (const p of ['server.port', 'server.colour', 'log.level', 'store.jobs.outboxSweep', 'extra']) assert.ok(e.message.includes(`- ${p}:`), `${p} in:\n${e.message}`);
          assert.match(e.message, /colour/);
          assert.match(e.message, /extra/);
          return true;
        },
      );
    });
  });

  test('a bad environment value is reported by the variable\'s name and its config path, all at once', () => {
    assert.throws(
      () => loadConfig({ env: { PERCH_PORT: 'http', PERCH_ALLOW_UNSIGNED_MODELS: 'yes', PERCH_DEVICE_ID: 'a/b', PERCH_API_TOKEN: 'short' } }),
      (e: PerchError) => {
        assert.equal(e.code, 'PERCH_ERR_CONFIG_INVALID');
        assert.ok(e.message.includes("- PERCH_PORT (server.port): 'http' is not a whole number"), e.message);
        assert.ok(e.message.includes("- PERCH_ALLOW_UNSIGNED_MODELS (cloud.allowUnsignedModels): 'yes' is neither true nor false"), e.message);
        assert.ok(e.message.includes('- PERCH_DEVICE_ID (device.id): '), e.message);
        assert.ok(e.message.includes('- PERCH_API_TOKEN (server.apiToken): '), e.message);
        assert.ok(!e.message.includes('short'), 'a string value (maybe a secret) is not echoed');
        return true;
      },
    );
    assert.throws(() => loadConfig({ env: { PERCH_PORT: '70000' } }), (e: PerchError) => e.message.includes('- PERCH_PORT (server.port): Too big'));
  });

  test('an unreadable or non-JSON file is a clear error', () => {
    assert.throws(() => loadConfig({ configPath: '/nonexistent/perch.json', env: {} }), (e: PerchError) => e.code === 'PERCH_ERR_CONFIG_INVALID' && e.message.includes('cannot read'));
    withFile('{ "server": ', (path) => {
      assert.throws(() => loadConfig({ configPath: path, env: {} }), (e: PerchError) => e.message.includes('not valid JSON'));
    });
    withFile('[1]', (path) => {
      assert.throws(() => loadConfig({ configPath: path, env: {} }), (e: PerchError) => e.message.includes('JSON object'));
    });
  });
});
