// A local app talking to Perch over WebSocket (docs/protocol.md section 4): one inference with binary
// tensors, one durable event, and the runtime's status. Run it beside `npm start`:
//   node docs/examples/ws-infer.mjs [ws://127.0.0.1:8080/v1/ws]
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8080/v1/ws';
const ws = new WebSocket(url, { headers: process.env.PERCH_API_TOKEN ? { authorization: `Bearer ${process.env.PERCH_API_TOKEN}` } : {} });
const pending = new Map();

function request(msg, tensors = []) {
  return new Promise((resolve) => {
    pending.set(msg.id, resolve);
    if (!tensors.length) return ws.send(JSON.stringify(msg));
    // Binary frame: [uint32 LE header length][JSON header][tensor bytes in input order]
    const header = Buffer.from(JSON.stringify(msg));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    ws.send(Buffer.concat([len, header, ...tensors.map((t) => Buffer.from(t.buffer))]));
  });
}

ws.on('message', (data, isBinary) => {
  let header = data;
  let bytes = Buffer.alloc(0);
  if (isBinary) {
    const n = data.readUInt32LE(0);
    header = data.subarray(4, 4 + n);
    bytes = data.subarray(4 + n);
  }
  const msg = JSON.parse(header.toString());
  msg.bytes = bytes;
  pending.get(msg.id)?.(msg);
});

ws.on('open', async () => {
  // 32 ms of a 220 Hz tone at 16 kHz, after 64 samples of context: 576 samples in all.
  const audio = Float32Array.from({ length: 576 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 220 * i) / 16000));
  const sr = BigInt64Array.from([16000n]);
  const answer = await request(
    {
      id: 'vad-1', op: 'infer', model: 'silero-vad',
      // silero-vad is a sequence model: Perch keeps each stream's state between chunks.
      parameters: { sequence_id: 'mic-1', sequence_start: true },
      inputs: [
        { name: 'input', shape: [1, 576], datatype: 'FP32', parameters: { binary_data_size: audio.byteLength } },
        { name: 'sr', shape: [], datatype: 'INT64', parameters: { binary_data_size: 8 } },
      ],
    },
    [audio, sr],
  );
  const out = answer.result.outputs[0];
  const prob = new Float32Array(answer.bytes.buffer.slice(answer.bytes.byteOffset, answer.bytes.byteOffset + out.parameters.binary_data_size));
  console.log('infer:', JSON.stringify({ model: answer.result.model_name, version: answer.result.model_version, output: out.name, shape: out.shape, speechProbability: Number(prob[0].toFixed(4)) }));
  const emitted = await request({ id: 'ev-1', op: 'emit', type: 'doorbell', payload: { pressed: true } });
  console.log('emit:', JSON.stringify({ ok: emitted.ok, seq: emitted.seq }));
  const status = await request({ id: 'st-1', op: 'status' });
  console.log('status:', JSON.stringify(status.status));
  ws.close();
});
ws.on('error', (err) => {
  console.error(`cannot reach Perch at ${url}: ${err.message}`);
  process.exitCode = 1;
});
