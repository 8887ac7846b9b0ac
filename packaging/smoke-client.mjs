// The client half of the image smoke test (packaging/smoke-arm64.sh starts the image, this
// talks to it): waits for /v2/health/ready with a deadline, runs one Open Inference Protocol
// inference on the shipped pp-ocr-cls model, emits one event over the WebSocket API, checks on
// /metrics that the malloc-trim addon loaded, and prints what it measured as `key=value` lines on
// stdout (diagnostics go to stderr).
//
// The image binds 0.0.0.0 with no token configured, so Perch generates one into its data volume
// (docs/security.md); --token-file names that file, read once the runtime is ready.
//
//   node packaging/smoke-client.mjs --port 8080 [--control-port 8081] --pid 1234 --started-ms 1700000000000 --deadline-s 300 --token-file /data/api-token
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { clearTimeout, setTimeout } from 'node:timers';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    // The control listener's port (the image sets PERCH_CONTROL_PORT): its /v2/health/ready is
    // what the image's HEALTHCHECK asks, so it must answer 200 once the main port does.
    'control-port': { type: 'string' },
    pid: { type: 'string' },
    'started-ms': { type: 'string' },
    'deadline-s': { type: 'string', default: '300' },
    'token-file': { type: 'string' },
  },
});
if (!values.port) throw new Error('--port is required');
const host = values.host;
const port = Number(values.port);
const pid = values.pid ? Number(values.pid) : null;
const startedMs = values['started-ms'] ? Number(values['started-ms']) : Date.now();
const deadline = startedMs + Number(values['deadline-s']) * 1000;
/** Read after ready: the runtime writes the file at start-up. */
let auth = {};

function request(method, path, body, toPort = port) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : JSON.stringify(body);
    const req = http.request(
      { host, port: toPort, method, path, headers: { ...auth, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

function alive() {
  if (pid === null) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function fail(message) {
  console.error(`smoke: FAIL: ${message}`);
  process.exit(1);
}

// 1. Ready: poll until 200, the process dies, or the deadline passes (no fixed sleeps).
async function waitReady() {
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (!alive()) fail(`the runtime exited before it was ready (last: ${last})`);
    try {
      const res = await request('GET', '/v2/health/ready');
      if (res.status === 200) return Date.now() - startedMs;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.code ?? err.message;
    }
    await sleep(200);
  }
  fail(`not ready within ${values['deadline-s']} s (last: ${last})`);
}

// 2. One inference on pp-ocr-cls: a [1,3,48,192] image in, [1,2] class probabilities out.
async function infer() {
  const n = 1 * 3 * 48 * 192;
  const data = new Array(n);
  for (let i = 0; i < n; i++) data[i] = ((i % 192) / 191) * 2 - 1; // a horizontal gradient in [-1, 1]
  const t0 = Date.now();
  const res = await request('POST', '/v2/models/pp-ocr-cls/infer', {
    inputs: [{ name: 'x', shape: [1, 3, 48, 192], datatype: 'FP32', data }],
  });
  const ms = Date.now() - t0;
  if (res.status !== 200) throw new Error(`infer answered HTTP ${res.status}: ${res.text.slice(0, 500)}`);
  const body = JSON.parse(res.text);
  if (body.model_name !== 'pp-ocr-cls') throw new Error(`infer answered model_name ${body.model_name}`);
  const out = body.outputs?.[0];
  if (!out || JSON.stringify(out.shape) !== '[1,2]') throw new Error(`infer output shape is ${JSON.stringify(out?.shape)}, want [1,2]`);
  if (out.datatype !== 'FP32' || !Array.isArray(out.data) || out.data.length !== 2) throw new Error(`infer output is ${JSON.stringify(out).slice(0, 300)}`);
  const sum = out.data[0] + out.data[1];
  if (!out.data.every((p) => p >= 0 && p <= 1) || Math.abs(sum - 1) > 1e-3) throw new Error(`probabilities ${out.data} do not sum to 1`);
  return { ms, probs: out.data, name: out.name };
}

// 3. One event over the WebSocket API; the ack must carry a sequence number.
function emit() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}:${port}/v1/ws`, { headers: auth });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no ack for the emitted event within 30 s'));
    }, 30_000);
    ws.on('open', () => ws.send(JSON.stringify({ id: '1', op: 'emit', type: 'smoke', payload: { n: 1 } })));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString('utf8'));
      if (msg.id !== '1') return; // server pushes (status, etc.) are not the answer
      clearTimeout(timer);
      ws.close();
      if (msg.ok !== true) reject(new Error(`emit answered ${JSON.stringify(msg).slice(0, 300)}`));
      else if (typeof msg.seq !== 'number' && typeof msg.seq !== 'string') reject(new Error(`emit ack has no seq: ${JSON.stringify(msg)}`));
      else resolve(msg);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const readyMs = await waitReady();
console.log(`ready_ms=${readyMs}`);
console.error(`smoke: ready after ${(readyMs / 1000).toFixed(1)} s`);
if (values['token-file']) auth = { authorization: `Bearer ${readFileSync(values['token-file'], 'utf8').trim()}` };

// Inference and emit are checked independently, so one failure does not hide the other.
let failed = 0;
if (values['control-port']) {
  // The image's HEALTHCHECK asks the control listener: it must say ready too (polled to the same
  // deadline: its thread may report ready a snapshot after the main port does).
  const controlPort = Number(values['control-port']);
  let last = 'no answer yet';
  while (last !== 'ready') {
    try {
      const res = await request('GET', '/v2/health/ready', undefined, controlPort);
      last = res.status === 200 ? 'ready' : `HTTP ${res.status}`;
    } catch (err) {
      last = err.code ?? err.message;
    }
    if (last !== 'ready' && Date.now() >= deadline) break;
    if (last !== 'ready') await sleep(200);
  }
  if (last === 'ready') {
    console.error(`smoke: control listener ready on port ${controlPort}`);
  } else {
    failed++;
    console.error(`smoke: FAIL: the control listener on port ${controlPort} never said ready (last: ${last})`);
  }
}
try {
  const result = await infer();
  console.log(`infer_ms=${result.ms}`);
  console.error(`smoke: pp-ocr-cls ${result.name} = [${result.probs.map((p) => p.toFixed(4)).join(', ')}] in ${result.ms} ms`);
} catch (err) {
  failed++;
  console.error(`smoke: FAIL: infer: ${err.message}`);
}
try {
  const ack = await emit();
  console.log(`emit_seq=${ack.seq}`);
  console.error(`smoke: emit acknowledged: seq ${ack.seq}, eventId ${ack.eventId}`);
} catch (err) {
  failed++;
  console.error(`smoke: FAIL: emit: ${err.message}`);
}
// 4. The image's Perch loaded its own addon (native/malloc-trim.c, glibc's malloc_trim after
// bursts; docs/reliability.md "Memory after a burst"): /metrics says so.
try {
  const res = await request('GET', '/metrics');
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  const line = res.text.split('\n').find((l) => l.startsWith('perch_memory_trim_available '));
  if (line !== 'perch_memory_trim_available 1') throw new Error(`/metrics says ${JSON.stringify(line ?? 'no perch_memory_trim_available')}, want 1`);
  console.log('trim_available=1');
  console.error('smoke: malloc-trim addon loaded (perch_memory_trim_available 1)');
} catch (err) {
  failed++;
  console.error(`smoke: FAIL: malloc-trim addon: ${err.message}`);
}
process.exitCode = failed ? 1 : 0;
