// Inference failures (500) are logged by Perch (issue 14, bug 12), with model, version and code,
// at most once per model/version/code per interval, counting the ones in between; client
// errors (400) are not logged. Silero VAD v6 fails in onnxruntime for a sample rate other than
// 8000 or 16000: a real failure of a real model.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FailureLog } from '../../runtime/inference/failure-log.js';
import { PerchError } from '../../runtime/base/errors.js';
import { parseConfig } from '../../runtime/config/load.js';
import { Runtime } from '../../runtime/runtime.js';
import { httpInfer } from '../helpers/clients.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogger, ERROR } from '../helpers/log-capture.js';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const temp: string[] = [];
let runtime: Runtime | undefined;
after(async () => {
  await runtime?.stop();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('a 500 from onnxruntime is logged with model, version and code; a 400 is not', async () => {
  const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad } } });
  temp.push(repo.dir);
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
  temp.push(dataDir);
  const { logger, lines } = captureLogger('info');
  runtime = new Runtime(parseConfig({ dataDir, server: { host: '127.0.0.1', port: 0 }, models: { repository: repo.dir } }), { log: logger });
  const baseUrl = `http://127.0.0.1:${(await runtime.start()).port}`;

  const request = (sr: bigint) => [
    randomFp32('input', [1, 576], 5),
    { name: 'state', datatype: 'FP32' as const, shape: [2, 1, 128], data: new Float32Array(256) },
    { name: 'sr', datatype: 'INT64' as const, shape: [], data: BigInt64Array.from([sr]) },
  ];
  const bad = await httpInfer(baseUrl, 'vad', request(44100n));
  assert.equal(bad.status, 500, JSON.stringify(bad.body));
  const client = await httpInfer(baseUrl, 'vad', request(16000n).slice(0, 2));
  assert.equal(client.status, 400);

  const logged = lines.filter((l) => l.msg === 'inference failed');
  assert.equal(logged.length, 1, JSON.stringify(lines.filter((l) => l.level >= ERROR)));
  assert.equal(logged[0]!.level, ERROR);
  assert.deepEqual([logged[0]!.model, logged[0]!.version, logged[0]!.code], ['vad', '1', 'PERCH_ERR_INFERENCE_FAILED']);
});

test('a model failing every request: one line per interval, with the count of the others', () => {
  const { logger, lines } = captureLogger('info');
  const clock = new FakeClock();
  const log = new FailureLog(logger, clock, 10_000);
  const err = new PerchError('PERCH_ERR_INFERENCE_FAILED', 'onnxruntime: bad shape');
  for (let i = 0; i < 50; i++) log.report('m', '1', err);
  log.report('m', '2', err); // another version: its own line
  clock.advance(10_000);
  log.report('m', '1', err);
  log.report('m', '1', new PerchError('PERCH_ERR_QUEUE_FULL')); // 429: not Perch's failure
  const logged = lines.filter((l) => l.msg === 'inference failed');
  assert.deepEqual(logged.map((l) => [l.version, l.alsoFailedSinceLastLine]), [['1', undefined], ['2', undefined], ['1', 49]]);
});
