// A session worker that answers in bursts, for test/sessions/result-turns.test.ts: it opens no
// model, holds the runs it is handed until PERCH_TEST_BURST of them are there, then posts all
// their results in one go, as a session thread does that runs batches faster than the main
// thread settles them (docs/reliability.md "The main port's p99: waiting for a core").
import { parentPort } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../../runtime/sessions/worker-protocol.js';

const port = parentPort!;
const burst = Number(process.env.PERCH_TEST_BURST ?? 1);
const held: number[] = [];
const post = (msg: FromWorker): void => port.postMessage(msg);

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'close') {
    post({ type: 'closed' });
  } else if (msg.type === 'run') {
    held.push(msg.id);
    if (held.length < burst) return;
    for (const id of held.splice(0)) post({ type: 'result', id, outputs: [], runMs: 0, inputs: [] });
  }
});
post({ type: 'ready', inputs: [], outputs: [], providers: ['cpu'], warnings: [] });
