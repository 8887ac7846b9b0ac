// A WebSocket peer that sends a close frame and never closes its TCP side (half-open): ws answers
// with its close frame, ends the socket and waited up to 30 s for the peer's FIN, and Perch kept
// the connection's sequences, its scope and its bytes of the client budget all that time. Now they
// go when the close frame arrives, and the socket once Perch's close frame is out
// (docs/reliability.md "Clients that go away"). A raw TCP socket plays the peer: it does the
// handshake by hand, writes masked frames, reads what comes back, and never ends or closes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { binaryFrame, binaryParts } from '../helpers/wire.js';

let repo: TempRepository;
let rt: TestRuntime;
const peers: Socket[] = [];

before(async () => {
  const config = { ...vadModelJson(8), sequence: { state: [{ input: 'state', output: 'stateN' }], maxSequences: 4 } };
  repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config } });
  rt = await startRuntime(repo.dir);
});
after(async () => {
  for (const p of peers) p.destroy();
  await rt?.stop();
  repo?.remove();
});

/** One masked client frame (RFC 6455 section 5.2). */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0, len]) : Buffer.alloc(4);
  if (len >= 126) {
    if (len >= 65536) throw new Error('frame too long for this helper');
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = (head[1] as number) | 0x80;
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, key, body]);
}

interface Peer {
  socket: Socket;
  /** Server frames read so far: opcode and payload. */
  frames: Array<{ opcode: number; payload: Buffer }>;
  /** The server ended its side (FIN). */
  ended: boolean;
  closed: boolean;
}

/** A raw TCP WebSocket client: allowHalfOpen, so it never ends its side when the server ends its own. */
async function peer(port: number): Promise<Peer> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  peers.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const p: Peer = { socket, frames: [], ended: false, closed: false };
  socket.on('error', () => undefined);
  socket.on('end', () => (p.ended = true));
  socket.on('close', () => (p.closed = true));
  let buf = Buffer.alloc(0);
  let upgraded = false;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      assert.match(buf.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /);
      buf = buf.subarray(end + 4);
      upgraded = true;
    }
    for (;;) {
      if (buf.length < 2) return;
      let len = (buf[1] as number) & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) return;
      p.frames.push({ opcode: (buf[0] as number) & 0x0f, payload: buf.subarray(at, at + len) });
      buf = buf.subarray(at + len);
    }
  });
  socket.write(
    'GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  return p;
}

/** A binary infer message that starts sequence `id` (docs/protocol.md section 2). */
function startSequence(id: string): Buffer {
  const parts = binaryParts(vadInputs(1).filter((t) => t.name !== 'state'));
  return binaryFrame({ id, op: 'infer', model: 'vad', inputs: parts.map((x) => x.header), parameters: { sequence_id: id, sequence_start: true } }, parts.map((x) => x.bytes));
}

const CLOSE_NORMAL = Buffer.from([0x03, 0xe8]); // 1000

test('a close frame and a TCP side never closed: sequences and budget given back when the frame arrives', async () => {
  const held = (): number => rt.runtime.clientBudget.heldBytes;
  const p = await peer(rt.runtime.address.port);
  p.socket.write(frame(2, startSequence('half-open')));
  await waitFor(() => p.frames.length > 0, 10_000, 'the sequence start answered');
  assert.equal(p.frames[0]?.opcode, 2, p.frames[0]?.payload.toString());
  assert.equal(rt.runtime.sequences.stats().length, 1, 'a live sequence tied to the connection');
  // The first fragment of a message that never ends: its bytes are held for the client.
  p.socket.write(frame(2, randomBytes(40_000), false));
  await waitFor(() => held() >= 40_000, 10_000, 'the unfinished message charged to the budget');

  p.socket.write(frame(8, CLOSE_NORMAL));
  await waitFor(() => rt.runtime.sequences.stats().length === 0 && held() === 0 && rt.runtime.ws.connectionCount === 0, 10_000,
    'sequence ended, bytes given back, connection gone').catch((err: Error) => {
    throw new Error(`${err.message}: ${rt.runtime.sequences.stats().length} sequences, ${held()} bytes held, ${rt.runtime.ws.connectionCount} connections`);
  });
  assert.equal(p.socket.writableEnded, false, 'the peer never ended its side');
  await waitFor(() => p.frames.some((f) => f.opcode === 8) && p.ended, 10_000, "the server's close frame and FIN");

  // Another client starts a sequence of the same model (its slots are free) and is served.
  const q = await peer(rt.runtime.address.port);
  q.socket.write(frame(2, startSequence('next')));
  await waitFor(() => q.frames.some((f) => f.opcode === 2), 10_000, 'the next client served');
  q.socket.destroy();
});
