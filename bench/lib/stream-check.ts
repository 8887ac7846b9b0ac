// Checks a sequence server's silero-vad answers against raw onnxruntime before it is measured
// (bench/streams.ts, issue 20's minimal anchor): a few streams interleaved on one connection, so
// their chunks share batches, each compared with the same stream run alone with its state fed
// back by hand (test/helpers/vad.ts rawStream). Throws when any probability differs.
import WebSocket from 'ws';
import { MODEL_FILES } from '../../test/helpers/paths.js';
import { chunkInputs, loadSpeech, rawStream, SAMPLE_RATE } from '../../test/helpers/vad.js';
import { binaryFrame } from '../../test/helpers/wire.js';
import { openRaw } from './raw-ort.js';

const STREAMS = 4;
const CHUNKS = 12;
const TOLERANCE = 1e-4;

function frame(id: string, sequenceId: string, start: boolean, chunk: Float32Array): Buffer {
  const sr = Buffer.alloc(8);
  sr.writeBigInt64LE(BigInt(SAMPLE_RATE));
  return binaryFrame({
    id, op: 'infer', model: 'silero-vad', parameters: { sequence_id: sequenceId, ...(start ? { sequence_start: true } : {}) },
    inputs: [
      { name: 'input', shape: [1, chunk.length], datatype: 'FP32', parameters: { binary_data_size: chunk.byteLength } },
      { name: 'sr', shape: [], datatype: 'INT64', parameters: { binary_data_size: 8 } },
    ],
  }, [new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), sr]);
}

/** The largest difference seen (throws past TOLERANCE). */
export async function checkAgainstRaw(wsUrl: string): Promise<number> {
  const audio = loadSpeech();
  const streams = Array.from({ length: STREAMS }, (_, i) => chunkInputs(audio, 16000 * (1 + i)).slice(0, CHUNKS));
  const session = await openRaw(MODEL_FILES.sileroVad16k);
  const want = [];
  for (const chunks of streams) want.push(await rawStream(session, chunks));
  await session.release();

  const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const got: number[][] = streams.map(() => []);
  try {
    for (let k = 0; k < CHUNKS; k++) {
      const answers = new Promise<void>((resolve, reject) => {
        let left = STREAMS;
        const onMessage = (data: Buffer): void => {
          const n = data.readUInt32LE(0);
          const h = JSON.parse(data.toString('utf8', 4, 4 + n)) as { id: string; ok: boolean };
          if (!h.ok) return reject(new Error(`check: chunk ${h.id} refused`));
          const i = Number(h.id.split(':')[0]);
          got[i]![k] = data.readFloatLE(4 + n);
          if (--left === 0) {
            ws.off('message', onMessage);
            resolve();
          }
        };
        ws.on('message', onMessage);
      });
      streams.forEach((chunks, i) => ws.send(frame(`${i}:${k}`, `check-${i}`, k === 0, chunks[k]!)));
      await answers;
    }
  } finally {
    ws.close();
  }
  let worst = 0;
  want.forEach((probs, i) => probs.forEach((p, k) => (worst = Math.max(worst, Math.abs(p - (got[i]![k] ?? Number.NaN))))));
  if (!(worst <= TOLERANCE)) throw new Error(`sequence server answers differ from raw onnxruntime by ${worst}`);
  return worst;
}
