// WebSocket frames as a careless client or an attacker writes them (docs/protocol.md section 4,
// docs/api.md "WebSocket"): a frame split at every byte, a message in fragments with control
// frames between them, what RFC 6455 makes a protocol error, a text frame that is not UTF-8, a
// declared length past server.maxFrameBytes, and a ping flood. Each gets its answer or its close
// code; every other connection is served on and nothing stays held. Frames are written straight
// to the client's TCP socket (a `ws` client does the handshake and reads what comes back).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { readOutputs, waitFor, WsClient } from '../helpers/clients.js';
import { rawRun, releaseRawSessions, vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { binaryFrame, binaryParts } from '../helpers/wire.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

const MAX_FRAME = 256 * 1024;

/** One client frame, masked as a client's must be (RFC 6455 section 5.2). */
function frame(opcode: number, payload: Buffer | string, o: { fin?: boolean; mask?: boolean; rsv?: number; declared?: number } = {}): Buffer {
  const body = Buffer.from(payload);
  const len = o.declared ?? body.length;
  let head: Buffer;
  if (len < 126) {
    head = Buffer.from([0, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = ((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode;
  if (o.mask === false) return Buffer.concat([head, body]);
  head[1] = (head[1] as number) | 0x80;
  const key = randomBytes(4);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, key, body]);
}

interface Raw {
  ws: WebSocket;
  write(b: Buffer): Promise<void>;
  /** Messages received, parsed (a binary one: its JSON header, and its outputs read). */
  answers: Array<{ body: Record<string, unknown>; outputs: Tensor[] }>;
  pongs: number;
  closed: Promise<number>;
}

async function raw(url: string): Promise<Raw> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => undefined);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
  const socket = (ws as any)._socket as Socket;
  const r: Raw = {
    ws,
    write: (b) => new Promise((resolve) => socket.write(b, () => resolve())),
    answers: [],
    pongs: 0,
    closed: new Promise((resolve) => ws.once('close', (code: number) => resolve(code))),
  };
  ws.on('pong', () => r.pongs++);
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return void r.answers.push({ body: JSON.parse(data.toString()) as Record<string, unknown>, outputs: [] });
    const n = data.readUInt32LE(0);
    const body = JSON.parse(data.subarray(4, 4 + n).toString()) as Record<string, unknown>;
    const result = body.result as { outputs?: Parameters<typeof readOutputs>[0] } | undefined;
    r.answers.push({ body, outputs: readOutputs(result?.outputs, new Uint8Array(data.subarray(4 + n))) });
  });
  return r;
}

/** A binary infer frame's payload (docs/protocol.md section 2). */
function inferPayload(id: string, inputs: Tensor[]): Buffer {
  const parts = binaryParts(inputs);
  return binaryFrame({ id, op: 'infer', model: 'vad', inputs: parts.map((p) => p.header) }, parts.map((p) => p.bytes));
}

describe('WebSocket frames', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  const held = (): number => rt.runtime.clientBudget.heldBytes;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(16) } });
    rt = await startRuntime(repo.dir, { server: { maxFrameBytes: MAX_FRAME } });
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
    await releaseRawSessions();
  });

  /** Another connection is served, and nothing is held once the clients are gone. */
  async function othersServedNothingHeld(): Promise<void> {
    const c = await WsClient.connect(rt.wsUrl);
    try {
      const inputs = vadInputs(99);
      const a = await c.infer('vad', inputs, { binary: true });
      assert.ok(a.ok, JSON.stringify(a.body));
      assert.deepEqual(a.outputs[0]?.data, (await rawRun(MODEL_FILES.sileroVad16k, inputs))[0]?.data);
    } finally {
      await c.close();
    }
    await waitFor(() => held() === 0 && rt.runtime.ws.connectionCount === 0, 10_000, 'every byte and connection given back');
  }

  test('a frame written one byte at a time, and a message in fragments with pings and pongs between them, are answered as whole ones', async () => {
    const c = await raw(rt.wsUrl);
    const one = vadInputs(1);
    const two = vadInputs(2);
    const whole = frame(2, inferPayload('bytewise', one));
    for (let i = 0; i < whole.length; i++) await c.write(whole.subarray(i, i + 1));
    const m = inferPayload('fragments', two);
    const cuts = [0, 1, 4, 40, 1000, m.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      await c.write(frame(i === 0 ? 2 : 0, m.subarray(cuts[i], cuts[i + 1]), { fin: i + 2 === cuts.length }));
      if (i < 3) await c.write(frame(i % 2 === 0 ? 9 : 10, `control ${i}`));
    }
    await waitFor(() => c.answers.length === 2, 10_000, 'both answered');
    const byId = new Map(c.answers.map((a) => [a.body.id, a]));
    assert.deepEqual(byId.get('bytewise')?.outputs[0]?.data, (await rawRun(MODEL_FILES.sileroVad16k, one))[0]?.data);
    assert.deepEqual(byId.get('fragments')?.outputs[0]?.data, (await rawRun(MODEL_FILES.sileroVad16k, two))[0]?.data);
    assert.equal(c.pongs, 2, 'each ping between fragments answered');
    c.ws.terminate();
    await othersServedNothingHeld();
  });

  test('what RFC 6455 calls a protocol error closes that connection with 1002, a text frame that is not UTF-8 with 1007; the others go on', async () => {
    const cases: Array<[string, Buffer[], number]> = [
      ['a continuation with no message begun', [frame(0, 'abc')], 1002],
      ['an unmasked client frame', [frame(1, '{"id":1,"op":"status"}', { mask: false })], 1002],
      ['a reserved bit set', [frame(1, '{"id":1,"op":"status"}', { rsv: 2 })], 1002],
      ['an unknown opcode', [frame(5, 'x')], 1002],
      ['a ping of 126 bytes', [frame(9, Buffer.alloc(126))], 1002],
      ['a fragmented ping', [frame(9, 'x', { fin: false })], 1002],
      ['a text message begun inside a binary one', [frame(2, inferPayload('i', vadInputs(3)).subarray(0, 10), { fin: false }), frame(1, '{"id":2,"op":"status"}')], 1002],
      ['a text frame that is not UTF-8', [frame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))], 1007],
    ];
    for (const [what, frames, code] of cases) {
      const c = await raw(rt.wsUrl);
      for (const f of frames) await c.write(f);
      assert.equal(await c.closed, code, what);
      assert.equal(c.answers.length, 0, what);
    }
    await othersServedNothingHeld();
  });

  test('a declared length past maxFrameBytes closes with 1009 before any of it is held, in one frame or in fragments', async () => {
    const declared = await raw(rt.wsUrl);
    await declared.write(frame(2, Buffer.alloc(0), { declared: 2 ** 40 }).subarray(0, 14));
    assert.equal(await declared.closed, 1009);
    const pieces = await raw(rt.wsUrl);
    const piece = Buffer.alloc(MAX_FRAME / 2);
    await pieces.write(frame(2, piece, { fin: false }));
    await pieces.write(frame(0, piece, { fin: false }));
    await pieces.write(frame(0, Buffer.alloc(1), { fin: false }).subarray(0, 2));
    assert.equal(await pieces.closed, 1009);
    await othersServedNothingHeld();
  });

  test('pings are answered; a client with more than 60 pings not yet answered is dropped (ws: maxPendingAutoPongs), the others go on', async () => {
    const polite = await raw(rt.wsUrl);
    // One ping at a time, each once the last one's pong came: never more than one waiting.
    for (let i = 1; i <= 20; i++) {
      await polite.write(frame(9, `p${i}`));
      await waitFor(() => polite.pongs === i, 10_000, 'a pong for each ping');
    }
    // 10,000 pings in one write: every socket read of them holds far more than 60.
    const flood = await raw(rt.wsUrl);
    await flood.write(Buffer.concat(Array.from({ length: 10_000 }, () => frame(9, ''))));
    assert.equal(await flood.closed, 1006, 'dropped without a close frame');
    assert.ok(flood.pongs < 10_000);
    assert.equal(polite.ws.readyState, WebSocket.OPEN);
    polite.ws.terminate();
    await othersServedNothingHeld();
  });
});
