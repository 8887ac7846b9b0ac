// The session thread of the minimal servers (bench/lib/minimal-wire.ts SessionThread): one
// onnxruntime session; each message is one run's feeds, each answer its outputs, moved back.
import { parentPort, workerData } from 'node:worker_threads';
import { fromOrt, openSession, toOrt, transferables, type Feed } from './minimal-wire.js';

const port = parentPort!;
const session = await openSession((workerData as { modelFile: string }).modelFile);
port.on('message', (m: { n: number; feeds: Feed[] }) => {
  void session.run(toOrt(m.feeds)).then((results) => {
    const outputs = fromOrt(results);
    port.postMessage({ n: m.n, outputs }, transferables(outputs));
  });
});
port.postMessage('ready');
