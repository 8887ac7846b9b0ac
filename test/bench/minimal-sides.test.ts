// The overload campaign's minimal servers (bench/reliability/sides.ts) must speak the attacks'
// wire as Perch does, or "Perch / minimal" compares different work (docs/reliability.md "The
// main port's p99: the minimal server beside it"). Against the shipped models, a real Perch and
// the real minimal servers side by side: the never-reading clients' sequence frames (start,
// continue, end, then a chunk of no live sequence; stateN asked as JSON) get the same answers,
// state included; 40 chunks of one sequence sent at once (past the 16 a connection may have
// unanswered, minimal-pacing.ts) are all answered with the same state chain; health answers as
// Perch's; /metrics counts what the campaign reads (bench/reliability/answers.ts); and the infer
// flood's HTTP binary request gets the same outputs from the flood's minimal server.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { answerCounts } from '../../bench/reliability/answers.js';
import { MINIMAL_FLOOD, MINIMAL_SEQUENCES, startMinimal } from '../../bench/reliability/sides.js';
import { startPerch, type PerchServer } from '../../bench/lib/perch-server.js';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { clsInput, vadInputs } from '../helpers/models.js';
import { SHIPPED_MODELS } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

let perch: PerchServer;
let sequences: PerchServer;
let flood: PerchServer;

before(async () => {
  [perch, sequences, flood] = await Promise.all([
    startPerch({ repository: SHIPPED_MODELS, readyTimeoutMs: 120_000 }),
    startMinimal(MINIMAL_SEQUENCES, []),
    startMinimal(MINIMAL_FLOOD, []),
  ]);
});

after(async () => {
  await Promise.all([perch?.stop(), sequences?.stop(), flood?.stop()]);
});

interface Answer {
  id: string;
  ok: boolean;
  error?: { code: string };
  output?: number;
  stateN?: number[];
}

/** A WebSocket client that sends the never-reading attack's frames (attacks.ts wsNonReaders) and reads every answer. */
async function client(wsUrl: string): Promise<{ send(id: string, seed: number, params: Record<string, unknown>): void; answers: Map<string, Answer>; close(): void }> {
  const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const answers = new Map<string, Answer>();
  ws.on('message', (d: Buffer, binary: boolean) => {
    if (!binary) {
      const m = JSON.parse(d.toString()) as Answer;
      answers.set(m.id, m);
      return;
    }
    const n = d.readUInt32LE(0);
    const h = JSON.parse(d.toString('utf8', 4, 4 + n)) as { id: string; ok: boolean; result: { outputs: Array<{ name: string; data?: number[] }> } };
    // The one binary output (output, 4 bytes) follows the header; stateN is in it as JSON.
    answers.set(h.id, { id: h.id, ok: h.ok, output: d.readFloatLE(4 + n), stateN: h.result.outputs.find((o) => o.name === 'stateN')?.data });
  });
  return {
    answers,
    send(id, seed, params) {
      const inputs = vadInputs(seed).filter((t) => t.name !== 'state');
      const parts = inputs.map(encodeBinaryData);
      const header = { id, op: 'infer', model: 'silero-vad', inputs: inputs.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: parts[i]!.byteLength } })), outputs: [{ name: 'output' }, { name: 'stateN', parameters: { binary_data: false } }], parameters: params };
      const json = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(json.length, 0);
      ws.send(Buffer.concat([len, json, ...parts]));
    },
    close: () => ws.terminate(),
  };
}

function assertClose(a: Answer, b: Answer, what: string): void {
  assert.equal(a.ok, true, `${what}: Perch answered ${JSON.stringify(a.error)}`);
  assert.equal(b.ok, true, `${what}: the minimal server answered ${JSON.stringify(b.error)}`);
  assert.ok(Math.abs(a.output! - b.output!) < 1e-5, `${what}: output ${a.output} against ${b.output}`);
  assert.equal(a.stateN?.length, 256, `${what}: Perch's stateN as JSON`);
  assert.equal(b.stateN?.length, 256, `${what}: the minimal server's stateN as JSON`);
  const worst = Math.max(...a.stateN!.map((x, i) => Math.abs(x - b.stateN![i]!)));
  assert.ok(worst < 1e-5, `${what}: stateN differs by ${worst}`);
}

test('the minimal sequence server answers start, continue, end and a chunk of no live sequence as Perch does', async () => {
  const [p, m] = await Promise.all([client(perch.wsUrl), client(sequences.wsUrl)]);
  try {
    const steps: Array<[string, Record<string, unknown>]> = [
      ['start', { sequence_id: 's0', sequence_start: true }],
      ['continue', { sequence_id: 's0' }],
      ['end', { sequence_id: 's0', sequence_end: true }],
      ['after its end', { sequence_id: 's0' }],
    ];
    for (const [k, [id, params]] of steps.entries()) {
      for (const c of [p, m]) c.send(id, k + 1, params);
      await waitFor(() => p.answers.has(id) && m.answers.has(id), 20_000, `both answers to '${id}'`);
      const [a, b] = [p.answers.get(id)!, m.answers.get(id)!];
      if (id === 'after its end') {
        assert.equal(a.error?.code, 'PERCH_ERR_SEQUENCE_UNKNOWN');
        assert.equal(b.error?.code, 'PERCH_ERR_SEQUENCE_UNKNOWN');
      } else assertClose(a, b, id);
    }
    // The campaign reads its answer counts from /metrics as Perch's (answers.ts).
    assert.deepEqual(await answerCounts(sequences.baseUrl), { ok: 3, errors: { PERCH_ERR_SEQUENCE_UNKNOWN: 1 } });
  } finally {
    p.close();
    m.close();
  }
});

test('40 chunks of one sequence sent at once are all answered, with the state chained as Perch chains it', async () => {
  const [p, m] = await Promise.all([client(perch.wsUrl), client(sequences.wsUrl)]);
  try {
    for (const c of [p, m]) for (let k = 0; k < 40; k++) c.send(`c${k}`, 100 + k, { sequence_id: 'pipelined', ...(k === 0 ? { sequence_start: true } : {}) });
    await waitFor(() => p.answers.size === 40 && m.answers.size === 40, 30_000, () => `40 answers each (Perch ${p.answers.size}, minimal ${m.answers.size})`);
    for (let k = 0; k < 40; k++) assertClose(p.answers.get(`c${k}`)!, m.answers.get(`c${k}`)!, `chunk ${k}`);
  } finally {
    p.close();
    m.close();
  }
});

test('health on the minimal servers answers as Perch\'s', async () => {
  for (const path of ['/v2/health/live', '/v2/health/ready']) {
    const want = await fetch(`${perch.baseUrl}${path}`);
    const wantBody = await want.json();
    for (const s of [sequences, flood]) {
      const got = await fetch(`${s.baseUrl}${path}`);
      assert.equal(got.status, want.status, path);
      assert.deepEqual(await got.json(), wantBody, path);
    }
  }
});

test('the flood\'s minimal server answers its HTTP binary request with Perch\'s outputs', async () => {
  const input = clsInput(3)[0]!;
  const bytes = encodeBinaryData(input);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: input.shape, datatype: 'FP32', parameters: { binary_data_size: bytes.byteLength } }] }));
  const outputs = async (s: PerchServer): Promise<number[]> => {
    const res = await fetch(`${s.baseUrl}/v2/models/pp-ocr-cls/infer`, { method: 'POST', headers: { 'inference-header-content-length': String(header.length) }, body: Buffer.concat([header, bytes]) });
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    // Binary outputs after the header (the minimal server), or JSON data (Perch unless asked for binary).
    const n = Number(res.headers.get('inference-header-content-length') ?? body.length);
    const h = JSON.parse(body.toString('utf8', 0, n)) as { outputs: Array<{ shape: number[]; data?: number[] }> };
    assert.deepEqual(h.outputs[0]!.shape, [1, 2]);
    return h.outputs[0]!.data ?? Array.from(new Float32Array(body.buffer.slice(body.byteOffset + n, body.byteOffset + body.length)));
  };
  const [a, b] = await Promise.all([outputs(perch), outputs(flood)]);
  assert.equal(b.length, a.length);
  for (const [i, x] of a.entries()) assert.ok(Math.abs(x - b[i]!) < 1e-5, `output ${i}: ${x} against ${b[i]}`);
  assert.deepEqual(await answerCounts(flood.baseUrl), { ok: 1, errors: {} });
});
