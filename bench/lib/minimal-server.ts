// The minimal served anchor of bench/overhead.ts (issue 20): a hand-written WebSocket and HTTP
// server in its own process, as Perch runs, that does only what serving one model needs: read
// the binary frame or body (the same header Perch reads, docs/protocol.md section 2), hand the
// tensors to a worker thread holding the onnxruntime session ('worker', as Perch's default
// executor) or run the session on the main thread ('main', as Perch's inline executor), answer
// the outputs as binary tensors. No validation, queue, batching, budgets, metrics or logs.
// The overload campaign's anchor for its infer flood too (bench/reliability/overload.ts): health
// and the campaign's answer counts (minimal-control.ts), and a WebSocket read no faster than its
// answers go out (minimal-pacing.ts); HTTP pipelining is Node's own.
// Run as a child: node dist/bench/lib/minimal-server.js <model.onnx> <worker|main> <model name>
// (prints {"msg":"perch is serving","port"} as the other servers of bench/lib do).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { controlAnswer, newCounter } from './minimal-control.js';
import { Pacing } from './minimal-pacing.js';
import { fromOrt, httpAnswer, openSession, readFeeds, SessionThread, toOrt, wsAnswer, type Feed, type Header } from './minimal-wire.js';

const [modelFile, mode, model] = process.argv.slice(2) as [string, string, string];
const onThread = mode === 'worker';
const thread = onThread ? await SessionThread.open(modelFile) : null;
const session = onThread ? null : await openSession(modelFile);
const counter = newCounter();

/** Runs one request's feeds where this server runs its session; `done` gets the outputs. */
function infer(feeds: Feed[], done: (outputs: Feed[]) => void): void {
  if (thread) thread.run(feeds, done);
  else void session!.run(toOrt(feeds)).then((r) => done(fromOrt(r)));
}

const server = createServer((req, res) => {
  if (controlAnswer(req, res, counter)) return;
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const n = Number(req.headers['inference-header-content-length']);
    const header = JSON.parse(body.toString('utf8', 0, n)) as Header;
    infer(readFeeds(header, body.subarray(n), onThread), (outputs) => {
      counter.ok++;
      const a = httpAnswer(model, outputs);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(a.headerLength) }).end(a.body);
    });
  });
});
const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  const pacing = new Pacing(ws);
  ws.on('message', (data: Buffer) => {
    const n = data.readUInt32LE(0);
    const header = JSON.parse(data.toString('utf8', 4, 4 + n)) as Header;
    pacing.took();
    infer(readFeeds(header, data.subarray(4 + n), onThread), (outputs) => {
      counter.ok++;
      ws.send(wsAnswer(header.id, model, outputs));
      pacing.answered();
    });
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'perch is serving', port: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
});
