// Issue 20: the bytes a stream chunk's decode and prepare allocate on the main thread, counted
// exactly (docs/benchmarks.md, "Stream chunks on the main thread"). `streams-ab.js --alloc`
// samples a whole server, one sample per 4 KiB, and its per-function figures move by a third
// from round to round on a loaded host; this calls the two functions alone on a silero-vad
// chunk as the WebSocket handler and the sequence manager give them (the chunk's `input` and
// `sr` after a binary header of arbitrary length, so `input` lies misaligned; the state added),
// in a child process with a large young generation, and reads V8's used heap before and after
// a window of calls in which no collection fell (GCProfiler says; after < before did not: a
// scavenge that the tensors' external memory starts frees less than the window made: the first
// figures, 152 and 312 B a chunk where clean windows count 540 and 1,095, were such windows).
// Load does not move the figure. A third figure: the same chunk sent as JSON (`input` and `sr` as `data` arrays, as a client
// without the binary extension sends it), decodeInputs alone.
//   node dist/bench/chunk-alloc.js [--against <built checkout>] [--calls 2000]
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { REPO_ROOT } from '../test/helpers/paths.js';
import { flag, numberFlag } from './lib/args.js';

declare const gc: () => void; // the child runs with --expose-gc (measure)

const CALLS = numberFlag('calls', 2000);
const WARM = 50000;
const ATTEMPTS = 20;

interface Count {
  decode: number;
  both: number;
  json: number;
}

async function child(root: string): Promise<void> {
  const url = (p: string): string => pathToFileURL(resolve(root, 'dist', 'runtime', p)).href;
  const { decodeInputs } = (await import(url('api/decode-request.js'))) as typeof import('../runtime/api/decode-request.js');
  const { prepareInputs } = (await import(url('batching/prepare.js'))) as typeof import('../runtime/batching/prepare.js');
  type Model = Parameters<typeof prepareInputs>[0];
  const model = {
    name: 'silero-vad', maxBatchSize: 64, inputs: [
      { name: 'input', datatype: 'FP32', dims: [-1, 576], batchAxis: 0 },
      { name: 'state', datatype: 'FP32', dims: [2, -1, 128], batchAxis: 1 },
      { name: 'sr', datatype: 'INT64', dims: [], batchAxis: null },
    ],
  } as unknown as Model;
  const header = JSON.stringify({
    id: 'a1', op: 'infer', model: 'silero-vad', inputs: [
      { name: 'input', shape: [1, 576], datatype: 'FP32', parameters: { binary_data_size: 576 * 4 } },
      { name: 'sr', shape: [], datatype: 'INT64', parameters: { binary_data_size: 8 } },
    ],
  });
  const frame = Buffer.alloc(4 + header.length + 576 * 4 + 8);
  frame.writeUInt32LE(header.length, 0);
  frame.write(header, 4);
  frame.writeBigInt64LE(16000n, 4 + header.length + 576 * 4);
  const binary = frame.subarray(4 + header.length);
  // Parsed headers made before counting: JSON.parse is the same on every checkout.
  const messages = Array.from({ length: 200 }, () => JSON.parse(header) as { inputs: Parameters<typeof decodeInputs>[0] });
  const samples = Array.from({ length: 576 }, (_, i) => Math.round(Math.sin(i / 9) * 3e4) / 1e5);
  const jsonMessages = Array.from({ length: 200 }, () => JSON.parse(JSON.stringify({
    id: 'a1', op: 'infer', model: 'silero-vad', inputs: [
      { name: 'input', shape: [1, 576], datatype: 'FP32', data: samples },
      { name: 'sr', shape: [], datatype: 'INT64', data: [16000] },
    ],
  })) as { inputs: Parameters<typeof decodeInputs>[0] });
  const state = { name: 'state', datatype: 'FP32' as const, shape: [2, 1, 128], data: new Float32Array(256) };
  const none = new Uint8Array(0);
  let sink = 0;
  const count = (prepare: boolean, json = false): number => {
    const once = (i: number): void => {
      if (json) {
        sink += decodeInputs((jsonMessages[i % 200] as (typeof jsonMessages)[number]).inputs, none).length;
        return;
      }
      const inputs = decodeInputs((messages[i % 200] as (typeof messages)[number]).inputs, binary);
      sink += prepare ? prepareInputs(model, [inputs[0]!, state, inputs[1]!]).items : inputs.length;
    };
    for (let i = 0; i < WARM; i++) once(i);
    // The tensors' buffers are external memory, whose pressure starts a scavenge now and then: a
    // window in which one fell is counted again.
    for (let attempt = 1; ; attempt++) {
      gc();
      const gcs = new GCProfiler();
      gcs.start();
      const before = getHeapStatistics().used_heap_size;
      for (let i = 0; i < CALLS; i++) once(i);
      const after = getHeapStatistics().used_heap_size;
      if (gcs.stop().statistics.length === 0) return (after - before) / CALLS;
      if (attempt === ATTEMPTS) throw new Error(`a collection fell inside each of ${ATTEMPTS} windows of ${CALLS} calls: fewer --calls`);
    }
  };
  const out: Count = { decode: count(false), both: count(true), json: count(false, true) };
  if (sink < 0) throw new Error('unreachable');
  console.log(JSON.stringify(out));
}

function measure(root: string): Count {
  const text = execFileSync(process.execPath, ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=128', process.argv[1] as string, '--child', root, '--calls', String(CALLS)], { encoding: 'utf8' });
  return JSON.parse(text) as Count;
}

const childRoot = flag('child');
if (childRoot) {
  await child(childRoot);
} else {
  const against = flag('against');
  const sides = [['this checkout', REPO_ROOT], ...(against ? [[`at ${against}`, resolve(against)]] : [])] as Array<[string, string]>;
  console.log(`# bytes allocated per chunk (${CALLS} calls, after ${WARM} to warm up), decodeInputs and prepareInputs; the chunk as JSON, decodeInputs`);
  for (const [name, root] of sides) {
    const c = measure(root);
    console.log(`${name.padEnd(28)} decodeInputs ${c.decode.toFixed(0).padStart(5)} B   decodeInputs + prepareInputs ${c.both.toFixed(0).padStart(5)} B   JSON chunk ${c.json.toFixed(0).padStart(6)} B`);
  }
}
