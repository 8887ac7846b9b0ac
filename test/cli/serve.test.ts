// `perch serve` as a real process (docs/protocol.md section 6): it logs its port, serves, and on SIGTERM
// finishes the inference in flight (and the one queued behind it), answers it correctly, and
// exits 0. Also: --help, an invalid config (every bad path reported at once), an unknown command.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { httpInfer, waitFor } from '../helpers/clients.js';
import { rawRun, releaseRawSessions } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { ENV_OVERRIDES } from '../../runtime/config/load.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { detInput, LONG_DET_SIZE } from '../helpers/scenarios.js';
import { Child, metricValue, scrape } from '../helpers/wire.js';


describe('perch serve (a real process)', () => {
  const children: Child[] = [];
  const temp: string[] = [];
  const run = (args: string[], env: Record<string, string> = {}): Child => {
    const c = Child.spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), cwd: tmp() });
    children.push(c);
    return c;
  };
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'perch-cli-'));
    temp.push(d);
    return d;
  };

  after(async () => {
    for (const c of children) await c.kill(); // a failed test must not leave a server running
    for (const d of temp) rmSync(d, { recursive: true, force: true });
    await releaseRawSessions();
  });

  test('SIGTERM while an inference runs: it answers 200 with the right output, then exit 0', async () => {
    const repo = new TempRepository({ det: { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 1 } } });
    temp.push(repo.dir);
    const child = run(['serve'], { PERCH_HOST: '127.0.0.1', PERCH_PORT: '0', PERCH_DATA_DIR: tmp(), PERCH_MODELS_DIR: repo.dir, PERCH_LOG_LEVEL: 'info' });

    await waitFor(() => !child.running || child.logLines().some((l) => l.msg === 'perch is serving'), 30_000, "the 'perch is serving' log line");
    assert.ok(child.running, `serve exited early:\n${child.stderr}\n${child.stdout}`);
    const serving = child.logLines().find((l) => l.msg === 'perch is serving') as { port: number };
    assert.ok(Number.isInteger(serving.port) && serving.port > 0, `a real port in the log line: ${JSON.stringify(serving)}`);
    const baseUrl = `http://127.0.0.1:${serving.port}`;
    assert.equal((await fetch(`${baseUrl}/v2/health/ready`)).status, 200);

    const input = detInput(LONG_DET_SIZE, 21);
    const want = rawRun(MODEL_FILES.ocrDet, input);
    // Two long requests: the first runs, the second waits in the queue. Queue depth 1 in the
    // metrics proves both have reached the scheduler before the signal.
    const first = httpInfer(baseUrl, 'det', input, { binary: true });
    const second = httpInfer(baseUrl, 'det', input, { binary: true });
    await waitFor(async () => metricValue(await scrape(baseUrl), 'perch_queue_depth', { model: 'det' }) === 1, 30_000, 'one request running, one queued');

    child.proc.kill('SIGTERM');
    const answers = await Promise.all([first, second]);
    const expected = await want;
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const got = a.outputs[0]!;
      const ref = expected[0]!;
      assert.deepEqual(got.shape, ref.shape);
      const g = got.data as Float32Array;
      const r = ref.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < r.length; i++) maxDiff = Math.max(maxDiff, Math.abs((g[i] as number) - (r[i] as number)));
      assert.ok(maxDiff <= 1e-5, `output equals a direct session.run (max difference ${maxDiff})`);
    }
    const exit = await child.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; stderr:\n${child.stderr}\nlast log lines:\n${child.stdout.split('\n').slice(-5).join('\n')}`);
    const messages = child.logLines().map((l) => l.msg);
    assert.ok(messages.indexOf('stopping: finishing in-flight work') < messages.indexOf('stopped'), `log order: ${messages.join(' | ')}`);
  });

  test('--help prints the usage and every environment variable, and exits 0', async () => {
    for (const args of [['--help'], ['serve', '--help']]) {
      const child = run(args);
      const exit = await child.exited;
      assert.equal(exit.code, 0, `${args.join(' ')}: ${child.stderr}`);
      assert.match(child.stdout, /Usage:/);
      assert.match(child.stdout, /perch serve \[--config FILE\]/);
      for (const name of ['PERCH_CONFIG', ...ENV_OVERRIDES.map((e) => e.env)]) assert.ok(child.stdout.includes(name), `${name} in:\n${child.stdout}`);
    }
  });

  test('an invalid config file: non-zero exit, PERCH_ERR_CONFIG_INVALID and every bad path', async () => {
    const dir = tmp();
    const file = join(dir, 'perch.json');
    writeFileSync(file, JSON.stringify({ server: { port: 'eighty', bogusKey: 1 }, log: { level: 'loud' }, unknownSection: {} }));
    const child = run(['serve', '--config', file], { PERCH_DATA_DIR: dir });
    const exit = await child.exited;
    assert.notEqual(exit.code, 0);
    assert.equal(exit.signal, null);
    assert.match(child.stderr, /PERCH_ERR_CONFIG_INVALID/);
    for (const bad of ['server.port', 'bogusKey', 'log.level', 'unknownSection']) {
      assert.ok(child.stderr.includes(bad), `'${bad}' reported in:\n${child.stderr}`);
    }
    assert.doesNotMatch(child.stdout, /perch is serving/);
  });

  test('an invalid PERCH_PORT is reported by the variable\'s name, with its config path', async () => {
    for (const [port, says] of [['abc', "'abc' is not a whole number"], ['70000', 'Too big']] as const) {
      const child = run(['serve'], { PERCH_PORT: port, PERCH_DATA_DIR: tmp(), PERCH_MODELS_DIR: tmp() });
      const exit = await child.exited;
      assert.equal(exit.code, 1, child.stderr);
      assert.match(child.stderr, /^perch: PERCH_ERR_CONFIG_INVALID: /);
      assert.ok(child.stderr.includes(`- PERCH_PORT (server.port): ${says}`), child.stderr);
      assert.doesNotMatch(child.stdout, /perch is serving/);
    }
  });

  test('an unknown command exits 2 with the usage', async () => {
    const child = run(['frobnicate']);
    const exit = await child.exited;
    assert.equal(exit.code, 2);
    assert.match(child.stderr, /unknown command 'frobnicate'/);
    assert.match(child.stderr, /Usage:/);
  });
});
