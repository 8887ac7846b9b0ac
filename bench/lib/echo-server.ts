// The transport floor: a server that reads the same WebSocket frames and HTTP bodies as Perch
// and answers a small OIP-shaped reply with no validation and no inference, in its own process
// like Perch. Perch's latency minus this and minus raw session.run is what Perch itself adds.
// Run as a child: node dist/bench/lib/echo-server.js (prints {"msg":"perch is serving","port"}).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const reply = (id: unknown) => Buffer.from(JSON.stringify({ id, ok: true, result: { model_name: 'echo', model_version: '1', outputs: [] } }));

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const hl = req.headers['inference-header-content-length'];
    JSON.parse(body.toString('utf8', 0, typeof hl === 'string' ? Number(hl) : body.length));
    res.writeHead(200, { 'content-type': 'application/json' }).end(reply(undefined));
  });
});
const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false });
wss.on('connection', (ws) =>
  ws.on('message', (data: Buffer, isBinary) => {
    const n = isBinary ? data.readUInt32LE(0) : 0;
    const header = JSON.parse(isBinary ? data.toString('utf8', 4, 4 + n) : data.toString('utf8')) as { id?: unknown };
    ws.send(reply(header.id), { binary: false });
  }),
);
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'perch is serving', port: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
});
