// A session worker that dies on purpose, for the restart tests (test/sessions). It is the real
// session worker (runtime/sessions/session-worker.ts) with two triggers, read from the
// environment the thread starts with:
// - PERCH_TEST_CRASH_MARKER=<file>: the thread's first 'run' message (its PERCH_TEST_CRASH_AT_RUN-th
//   if that is set) ends the thread (exit code 3) if the file does not exist yet, and creates
//   it; later threads run normally.
// - PERCH_TEST_FAIL_RESTART=1 as well: a thread that starts after that crash ends at once (exit
//   code 4), so the session can never be started again.
import { existsSync, writeFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

const marker = process.env.PERCH_TEST_CRASH_MARKER;
if (marker && existsSync(marker) && process.env.PERCH_TEST_FAIL_RESTART === '1') process.exit(4);

const crashAt = Number(process.env.PERCH_TEST_CRASH_AT_RUN ?? 1);
let runs = 0;

// Registered before the real worker's listener, so it sees a run first.
parentPort?.on('message', (msg: { type?: string }) => {
  if (msg.type === 'run') runs++;
  if (marker && msg.type === 'run' && runs === crashAt && !existsSync(marker)) {
    writeFileSync(marker, '');
    process.exit(3);
  }
});

await import('../../runtime/sessions/session-worker.js');
