// `perch status` against a real `perch serve` process (docs/cli.md): the table and --json from
// GET /v1/status, and coded errors for a refused token and an unreachable device.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { waitFor, WsClient } from '../helpers/clients.js';
import { freePort } from '../helpers/free-port.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { Child } from '../helpers/wire.js';

const TOKEN = 'status-test-token-42';

describe('perch status (real processes)', () => {
  const children: Child[] = [];
  const temp: string[] = [];
  after(async () => {
    for (const c of children) await c.kill();
    for (const d of temp) rmSync(d, { recursive: true, force: true });
  });
  const run = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const c = Child.spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env) });
    children.push(c);
    const { code } = await c.exited;
    return { code, stdout: c.stdout, stderr: c.stderr };
  };

  test('table and JSON from a serving device; refused token and unreachable device are coded errors', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } }, det: { versions: { 1: MODEL_FILES.ocrDet } } });
    temp.push(repo.dir);
    const dataDir = mkdtempSync(join(tmpdir(), 'perch-status-'));
    temp.push(dataDir);
    // A cloud broker on a loopback port nobody listens on: the device is offline, events pile up.
    const closedPort = await freePort();
    const serve = Child.spawn(process.execPath, [CLI, 'serve'], {
      env: cleanEnv({
        PERCH_HOST: '127.0.0.1', PERCH_PORT: '0', PERCH_DATA_DIR: dataDir, PERCH_MODELS_DIR: repo.dir, PERCH_LOG_LEVEL: 'info',
        PERCH_API_TOKEN: TOKEN, PERCH_MQTT_URL: `mqtt://user:secret@127.0.0.1:${closedPort}`,
      }),
    });
    children.push(serve);
    await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'perch is serving'), 30_000, 'perch is serving');
    assert.ok(serve.running, `serve exited early:\n${serve.stderr}\n${serve.stdout.slice(-2000)}`);
    const port = (serve.logLines().find((l) => l.msg === 'perch is serving') as { port: number }).port;
    const url = `http://127.0.0.1:${port}`;
    const ws = await WsClient.connect(`ws://127.0.0.1:${port}/v1/ws`, { token: TOKEN });
    try {
      for (let i = 0; i < 3; i++) assert.ok((await ws.request({ op: 'emit', type: 'door', payload: { i } })).ok);
    } finally {
      await ws.close();
    }

    const json = await run(['status', '--url', url, '--json'], { PERCH_API_TOKEN: TOKEN });
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as {
      models: Array<{ name: string; version: number; ready: boolean }>; outbox: { count: number; oldestAgeMs: number };
      connectivity: string; cloud: { broker: string }; device: { version: string }; modelChanges: Array<{ type: string }>; queue: Record<string, number>;
    };
    assert.deepEqual(doc.models.map((m) => [m.name, m.version, m.ready]).sort(), [['cls', 1, true], ['det', 1, true]]);
    assert.equal(doc.connectivity, 'offline');
    assert.equal(doc.cloud.broker, `mqtt://127.0.0.1:${closedPort}`, 'no credentials in the status');
    assert.ok(doc.outbox.count >= 5, `3 emits + 2 model.ready: ${doc.outbox.count}`);
    assert.ok(doc.modelChanges.some((c) => c.type === 'model.ready'));
    assert.deepEqual(doc.queue, { cls: 0, det: 0 });

    const table = await run(['status', '--url', url, '--token', TOKEN]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^cls\s+1\s+yes\s+0/m);
    assert.match(table.stdout, /^det\s+1\s+yes\s+0/m);
    assert.match(table.stdout, /cloud\s+offline\s+mqtt:\/\/127\.0\.0\.1/);
    assert.match(table.stdout, /outbox\s+\d+ events .*oldest/);
    assert.match(table.stdout, /last update\s+model\.ready/);
    assert.doesNotMatch(table.stdout, /secret/);

    const noToken = await run(['status', '--url', url]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /^perch: PERCH_ERR_UNAUTHORIZED: .*requires an API token/m);
    const wrong = await run(['status', '--url', url, '--token', 'not-the-token']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^perch: PERCH_ERR_UNAUTHORIZED: .*refused the token/m);

    const gone = await run(['status', '--url', `http://127.0.0.1:${closedPort}`]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^perch: PERCH_ERR_DEVICE_UNREACHABLE: no answer from http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/m);
  });
});

