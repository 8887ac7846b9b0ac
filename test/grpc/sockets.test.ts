// HTTP, WebSocket and gRPC on Unix domain sockets (server.socketPath, server.grpcSocketPath):
// each protocol answers over its socket with the same results as over TCP, the files get
// server.socketMode, a stale socket file left by a killed process is replaced, a live one, a
// file that is not a socket or a symbolic link is left alone, and both files are gone after stop.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { prepareSocketPath } from '../../runtime/api/unix-socket.js';
import { PerchError } from '../../runtime/base/errors.js';
import { clsInput, rawRun, releaseRawSessions } from '../helpers/models.js';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { answerTensors, InferenceClient, rawBytes, rawRequest, type InferAnswer } from './client.js';

const dir = mkdtempSync(join(tmpdir(), 'perch-sock-'));
const httpSock = join(dir, 'perch.sock');
const grpcSock = join(dir, 'perch-grpc.sock');
let rt: TestRuntime;

/** A socket file whose process died without removing it (SIGKILL). */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(statSync(path).isSocket(), 'the killed process left its socket file');
}

function httpOverSocket(path: string, method: string, url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  await staleSocket(httpSock);
  await staleSocket(grpcSock);
  rt = await startRuntime(SHIPPED_MODELS, { server: { socketPath: httpSock, grpcSocketPath: grpcSock, socketMode: '0600' } });
});
after(async () => {
  await rt?.stop();
  rmSync(dir, { recursive: true, force: true });
  await releaseRawSessions();
});

test('stale socket files were replaced, and the sockets have server.socketMode', () => {
  for (const p of [httpSock, grpcSock]) {
    assert.ok(statSync(p).isSocket());
    assert.equal(statSync(p).mode & 0o777, 0o600, p);
  }
});

test('HTTP over the socket: health and a binary inference equal to session.run', async () => {
  assert.equal((await httpOverSocket(httpSock, 'GET', '/v2/health/ready')).status, 200);
  const inputs = clsInput(5);
  const want = await rawRun(MODEL_FILES.ocrCls, inputs);
  const x = rawBytes(inputs[0]!);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'x', shape: [1, 3, 48, 192], datatype: 'FP32', parameters: { binary_data_size: x.length } }],
    parameters: { binary_data_output: true },
  }));
  const r = await httpOverSocket(httpSock, 'POST', '/v2/models/pp-ocr-cls/infer', Buffer.concat([header, x]), {
    'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length),
  });
  assert.equal(r.status, 200, r.body.toString());
  const n = Number(r.headers['inference-header-content-length']);
  const out = (JSON.parse(r.body.subarray(0, n).toString()) as { outputs: Array<{ shape: number[]; parameters: { binary_data_size: number } }> }).outputs[0]!;
  assert.deepEqual(out.shape, [1, 2]);
  const got = new Float32Array(new Uint8Array(r.body.subarray(n, n + out.parameters.binary_data_size)).slice().buffer);
  assert.deepEqual(Array.from(got), Array.from(want[0]!.data as Float32Array));
});

test('WebSocket over the socket', async () => {
  const ws = new WebSocket(`ws+unix://${httpSock}:/v1/ws`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const answer = await new Promise<{ id: string; ok: boolean; status: { models: unknown[] } }>((resolve) => {
    ws.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as never));
    ws.send(JSON.stringify({ id: 'st', op: 'status' }));
  });
  ws.close();
  assert.equal(answer.ok, true);
  assert.ok(answer.status.models.length >= 2);
});

test('gRPC over the socket: ModelInfer equal to session.run', async () => {
  const client = new InferenceClient(`unix:${grpcSock}`);
  try {
    const inputs = clsInput(6);
    const want = await rawRun(MODEL_FILES.ocrCls, inputs);
    const a = await client.call<InferAnswer>('ModelInfer', rawRequest('pp-ocr-cls', inputs));
    assert.deepEqual(Array.from(answerTensors(a)[0]!.data as Float32Array), Array.from(want[0]!.data as Float32Array));
  } finally {
    client.close();
  }
});

test('a live socket and a file that is not a socket are left alone', async () => {
  const live = join(dir, 'live.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(live, resolve));
  try {
    await assert.rejects(prepareSocketPath(live, 'server.socketPath'), (e: PerchError) => e.code === 'PERCH_ERR_PORT_IN_USE');
    assert.ok(existsSync(live));
  } finally {
    server.close();
  }
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'keep me');
  await assert.rejects(prepareSocketPath(file, 'server.socketPath'), (e: PerchError) => e.code === 'PERCH_ERR_LISTEN_FAILED');
  assert.ok(existsSync(file));
  // A symbolic link is not a socket, whatever it points at (a file, a stale socket): not followed,
  // neither it nor its target removed (red-team pass: held; lstat, not stat).
  const staleTarget = join(dir, 'stale-target.sock');
  await staleSocket(staleTarget);
  for (const [name, target] of [['link-to-file.sock', file], ['link-to-stale.sock', staleTarget]] as const) {
    const link = join(dir, name);
    symlinkSync(target, link);
    await assert.rejects(prepareSocketPath(link, 'server.grpcSocketPath'), (e: PerchError) => e.code === 'PERCH_ERR_LISTEN_FAILED' && /not a socket/.test(e.message));
    assert.ok(lstatSync(link).isSymbolicLink(), name);
    assert.ok(existsSync(target), `${name}: its target`);
  }
});

test('the socket files are removed on stop', async () => {
  await rt.stop();
  rt = undefined as unknown as TestRuntime;
  assert.equal(existsSync(httpSock), false);
  assert.equal(existsSync(grpcSock), false);
});
