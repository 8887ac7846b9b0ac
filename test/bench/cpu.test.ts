// The campaign's CPU figures (bench/reliability/cpu.ts, docs/reliability.md "The main port's
// p99: waiting for a core") read a real process from /proc: a child that spins on its main
// thread shows that thread's time on a CPU growing, and the whole process's CPU with it; a child
// that sleeps does not; the turn log (bench/reliability/turn-log.ts, loaded with --import) notes a
// turn its process blocked for 150 ms, and turnFigures cuts a log by attack. Linux only (/proc).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { test } from 'node:test';
import { cpuBetween, cpuSample, processCpuMs, readTurnLog, threadSchedMs, turnFigures } from '../../bench/reliability/cpu.js';
import type { TurnLogLine } from '../../bench/reliability/turn-log.js';
import { waitFor } from '../helpers/wait.js';

const skip = process.platform === 'linux' ? false : '/proc is Linux only';

function child(code: string): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

test('a spinning main thread shows as time on a CPU, a sleeping one does not', { skip }, async () => {
  const spinner = child('for (;;) {}');
  const sleeper = child('setInterval(() => {}, 60_000)');
  try {
    const [spinPid, sleepPid] = [spinner.pid as number, sleeper.pid as number];
    const from = cpuSample(spinPid);
    const sleepFrom = threadSchedMs(sleepPid, sleepPid)[0];
    await waitFor(() => threadSchedMs(spinPid, spinPid)[0] - from.mainOnCpuMs >= 300, 30_000, 'the spinning thread on a CPU for 300 ms');
    const figures = cpuBetween(from, cpuSample(spinPid));
    assert.ok(figures.mainOnCpuS >= 0.3, `main thread on CPU ${figures.mainOnCpuS} s`);
    assert.ok(figures.mainWaitS >= 0, 'runnable waiting is a duration');
    // The process's utime + stime (ticks of 10 ms) include the main thread's time.
    assert.ok(processCpuMs(spinPid) - from.perchCpuMs >= 200, 'the process CPU grew with its main thread');
    // Its start-up done, a process that only waits for a timer takes next to nothing meanwhile.
    assert.ok(threadSchedMs(sleepPid, sleepPid)[0] - sleepFrom < figures.mainOnCpuS * 1000, 'the sleeping thread took less CPU than the spinning one');
  } finally {
    spinner.kill();
    sleeper.kill();
    await Promise.all([once(spinner, 'exit'), once(sleeper, 'exit')]);
  }
});

test('the turn log notes a turn its process blocked for 150 ms, with its CPU and wait', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'perch-turn-log-'));
  try {
    const file = join(dir, 'turns.jsonl');
    const module = fileURLToPath(new URL('../../bench/reliability/turn-log.js', import.meta.url));
    // A timer first (the log's timer has ticked), then 150 ms that block the loop, then a tick after it.
    const code = 'setTimeout(() => { const t = Date.now(); while (Date.now() - t < 150); setTimeout(() => {}, 20); }, 20)';
    const r = spawnSync(process.execPath, [`--import=${module}`, '-e', code], { env: { ...process.env, PERCH_TURN_LOG: file }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const turns = readTurnLog(file).filter((l) => l.t === 'turn');
    const blocked = turns.find((t) => t.endUs - t.startUs >= 150_000);
    assert.ok(blocked, `a turn of 150 ms or more in ${JSON.stringify(turns)}`);
    assert.ok(blocked.cpuMs > 0 && blocked.waitMs >= 0, 'its CPU and wait are read');
    assert.ok(blocked.cpuMs + blocked.waitMs <= (blocked.endUs - blocked.startUs) / 1000 + 10, 'CPU and wait fit in its wall time');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('turnFigures takes the turns over 50 ms that started in the window, and the GC pauses in them', () => {
  const ms = 1000;
  const lines: TurnLogLine[] = [
    { t: 'turn', startUs: 0, endUs: 100 * ms, cpuMs: 90, waitMs: 5 }, // before the window
    { t: 'turn', startUs: 1000 * ms, endUs: 1040 * ms, cpuMs: 30, waitMs: 10 }, // 40 ms: not long
    { t: 'turn', startUs: 2000 * ms, endUs: 2100 * ms, cpuMs: 20, waitMs: 70 },
    { t: 'gc', startUs: 2050 * ms, ms: 12, kind: 4 },
    { t: 'turn', startUs: 3000 * ms, endUs: 3100 * ms, cpuMs: 40, waitMs: 50 },
    { t: 'gc', startUs: 3200 * ms, ms: 3, kind: 1 }, // after that turn
    { t: 'turn', startUs: 9000 * ms, endUs: 9100 * ms, cpuMs: 100, waitMs: 0 }, // after the window
  ];
  const f = turnFigures(lines, 500 * ms, 5000 * ms);
  assert.equal(f.longTurns, 2);
  assert.equal(f.cpuP50Ms, 20);
  assert.equal(f.cpuMaxMs, 40);
  assert.equal(f.onCpuPct, 30); // 60 of 200 ms
  assert.equal(f.waitingPct, 60); // 120 of 200
  assert.equal(f.blockedPct, 10);
  assert.equal(f.withGc, 1);
});
