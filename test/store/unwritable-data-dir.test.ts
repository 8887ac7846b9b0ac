// A data directory that cannot be written (issue 14, bug 12): the runtime serves, says so in one
// clear log line (its code, the directory, what to do; no stack trace), and says nothing more at
// warn or error level however often the store's jobs come round. Tests run as root, which
// ignores file modes: the directory here is under /sys, where not even root may create one.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseConfig } from '../../runtime/config/load.js';
import { STORE_JOB_NAMES } from '../../runtime/jobs/store-jobs.js';
import { Runtime } from '../../runtime/runtime.js';
import { httpInfer } from '../helpers/clients.js';
import { captureLogger, WARN } from '../helpers/log-capture.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';

const temp: string[] = [];
let runtime: Runtime | undefined;
after(async () => {
  await runtime?.stop();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('an unwritable data directory: one clear log line, then quiet at warn level through every job round', async () => {
  const dataDir = join('/sys', `perch-test-${process.pid}`, 'data');
  assert.throws(() => mkdirSync(dataDir, { recursive: true }), 'the premise: this directory cannot be made');
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  temp.push(repo.dir);

  const { logger, lines } = captureLogger();
  const config = parseConfig({ dataDir, server: { host: '127.0.0.1', port: 0 }, models: { repository: repo.dir } });
  runtime = new Runtime(config, { log: logger });
  const addr = await runtime.start();
  // It serves.
  const answer = await httpInfer(`http://127.0.0.1:${addr.port}`, 'cls', clsInput(3));
  assert.equal(answer.status, 200);
  // Three rounds of every store job (each cron tick would run them once).
  for (let round = 0; round < 3; round++) {
    for (const job of Object.values(STORE_JOB_NAMES)) await runtime.jobs.runNow(job);
  }

  const loud = lines.filter((l) => l.level >= WARN);
  assert.equal(loud.length, 1, `one line at warn or above, not:\n${loud.map((l) => JSON.stringify(l)).join('\n')}`);
  const line = loud[0]!;
  assert.equal(line.code, 'PERCH_ERR_STORE_READONLY');
  assert.ok(line.msg.includes(dataDir), `names the directory: ${line.msg}`);
  assert.match(line.msg, /PERCH_DATA_DIR/);
  assert.ok(!JSON.stringify(line).includes('    at '), `no stack trace: ${JSON.stringify(line)}`);
});
