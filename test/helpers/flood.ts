// An infer flood from a separate process (test/api/control-plane.test.ts): `connections` keep-alive
// HTTP connections, each with `pipelined` requests out at once and a new one sent for every
// answer, as a client that retries at once would. Prints `{"answers":n,"answered":k}` lines
// (answers so far, connections that have had one) so the test can wait until the flood is
// really on. Runs until killed.
// Usage: node dist/test/helpers/flood.js <port> <path> <connections> <pipelined> <body file>
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

const [port, path, connections, pipelined, bodyFile] = process.argv.slice(2);
const body = readFileSync(bodyFile as string);
const request = Buffer.concat([
  Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`),
  body,
]);
let answers = 0;
let answered = 0;
let printed = 0;
for (let i = 0; i < Number(connections); i++) {
  const s = connect(Number(port), '127.0.0.1');
  s.on('error', () => undefined);
  let first = true;
  s.on('data', (d: Buffer) => {
    if (first) answered++;
    first = false;
    const text = d.toString('latin1');
    for (let at = text.indexOf('HTTP/1.1 '); at >= 0; at = text.indexOf('HTTP/1.1 ', at + 1)) {
      answers++;
      s.write(request);
    }
  });
  s.once('connect', () => {
    for (let k = 0; k < Number(pipelined); k++) s.write(request);
  });
}
setInterval(() => {
  if (answers === printed) return;
  printed = answers;
  process.stdout.write(`${JSON.stringify({ answers, answered })}\n`);
}, 50);
