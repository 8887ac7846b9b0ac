import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getTasks } from 'node-cron';
import { PerchError } from '../../runtime/base/errors.js';
import { JobScheduler } from '../../runtime/jobs/scheduler.js';
import { captureLogger } from '../helpers/log-capture.js';
import { waitFor } from '../helpers/wait.js';


void test('jobs are isolated: a throwing or rejecting job is logged and counted, the others run', async () => {
  const { logger, lines } = captureLogger();
  let ran = 0;
  const scheduler = new JobScheduler(
    [
      { name: 'throws', schedule: '* * * * *', run: () => { throw new Error('sync boom'); } },
      { name: 'rejects', schedule: '* * * * *', run: () => Promise.reject(new Error('async boom')) },
      { name: 'works', schedule: '* * * * *', run: () => { ran++; } },
    ],
    { logger },
  );
  assert.equal(await scheduler.runNow('throws'), false);
  assert.equal(await scheduler.runNow('rejects'), false);
  assert.equal(await scheduler.runNow('works'), true);
  assert.equal(ran, 1);
  const status = Object.fromEntries(scheduler.status().map((s) => [s.name, s]));
  assert.equal(status.throws?.failures, 1);
  assert.equal(status.throws?.lastError, 'sync boom');
  assert.equal(status.rejects?.lastError, 'async boom');
  assert.equal(status.works?.failures, 0);
  assert.equal(status.works?.runs, 1);
  const failures = lines.filter((l) => l.msg === 'job failed');
  assert.deepEqual(failures.map((l) => l.job).sort(), ['rejects', 'throws']);
  assert.ok(failures.every((l) => l.level === 50 && typeof (l.err as { stack?: string }).stack === 'string'));
  await assert.rejects(scheduler.runNow('nope'), (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_INTERNAL');
});

void test('scheduled on node-cron: a failing job does not stop the others; stop() removes the schedules', async () => {
  const { logger } = captureLogger();
  let good = 0;
  let bad = 0;
  const scheduler = new JobScheduler(
    [
      { name: 'bad', schedule: '* * * * * *', run: () => { bad++; throw new Error('every second'); } },
      { name: 'good', schedule: '* * * * * *', run: () => { good++; } },
    ],
    { logger },
  );
  const before = getTasks().size;
  scheduler.start();
  scheduler.start(); // idempotent
  assert.equal(getTasks().size, before + 2);
  try {
    await waitFor(() => good >= 2 && bad >= 2, 10_000, 'two ticks of each job');
  } finally {
    await scheduler.stop();
  }
  assert.equal(getTasks().size, before);
  const status = scheduler.status();
  assert.ok(status.every((s) => s.runs >= 2 && s.running === false));
  assert.ok((status.find((s) => s.name === 'bad')?.failures ?? 0) >= 2);
});

void test('a tick that comes while the job still runs is skipped; stop() waits for the run in progress', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let runs = 0;
  let finished = false;
  const scheduler = new JobScheduler([{ name: 'slow', schedule: '0 0 1 1 *', run: async () => { runs++; await gate; finished = true; } }]);
  scheduler.start();
  const first = scheduler.runNow('slow');
  const second = scheduler.runNow('slow');
  assert.equal(scheduler.status()[0]?.running, true);
  const stopped = scheduler.stop();
  release();
  await Promise.all([first, second, stopped]);
  assert.equal(runs, 1);
  assert.equal(finished, true);
});

void test('bad job definitions are refused at construction', () => {
  assert.throws(() => new JobScheduler([{ name: 'x', schedule: 'not cron', run: () => undefined }]), (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_CONFIG_INVALID');
  assert.throws(
    () => new JobScheduler([{ name: 'x', schedule: '* * * * *', run: () => undefined }, { name: 'x', schedule: '* * * * *', run: () => undefined }]),
    (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_INTERNAL',
  );
});

void test('a job failing with a known PERCH_ERR code: one warn line without a stack, then quiet until the error changes', async () => {
  const { logger, lines } = captureLogger();
  let message = 'the disk is full';
  const scheduler = new JobScheduler([{ name: 'sweep', schedule: '* * * * *', run: () => { throw new PerchError('PERCH_ERR_STORE_FULL', message); } }], { logger });
  for (let i = 0; i < 3; i++) assert.equal(await scheduler.runNow('sweep'), false);
  message = 'still full, other file';
  await scheduler.runNow('sweep');
  const failures = lines.filter((l) => l.msg === 'job failed');
  assert.deepEqual(failures.map((l) => l.level), [40, 20, 20, 40]);
  assert.ok(failures.every((l) => l.code === 'PERCH_ERR_STORE_FULL' && typeof l.err === 'string'), JSON.stringify(failures));
  assert.equal(scheduler.status()[0]?.failures, 4);
});
