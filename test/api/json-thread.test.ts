// Large OIP JSON bodies are parsed on a thread of their own (issue 12, docs/reliability.md
// "Large JSON bodies: parsed off the main thread"): the main event loop keeps turning while one
// is parsed, the tensors that come back are the ones the main thread would have decoded, errors
// keep their PERCH_ERR_* codes, and bodies are parsed one at a time (what their parses leave is
// bounded by one body).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JsonParseThread, OFF_THREAD_JSON_BYTES } from '../../runtime/api/json-thread/parse-thread.js';
import { decodeInferJson } from '../../runtime/api/json-thread/decode-body.js';
import type { PerchError } from '../../runtime/base/errors.js';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { findNumberRuns } from '../../runtime/tensor/json-number-run.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { waitFor } from '../helpers/wait.js';
import { inferBody, postJson } from '../helpers/wire.js';

/** An OIP body of `n` FP32 numbers written long (about 20 bytes each), so it is large. */
function floatsBody(n: number): Buffer {
  const values = Array.from({ length: n }, (_, i) => Math.sin(i) / 3);
  return Buffer.from(JSON.stringify({ id: 'big', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, n], data: values }], outputs: [{ name: 'y' }] }));
}

describe('the JSON parse thread', () => {
  const thread = new JsonParseThread();
  after(() => thread.close());

  test('decodes a large body off the main thread into the tensors the main thread would decode', async () => {
    const json = floatsBody(600_000); // about 12 MB
    assert.ok(json.length > OFF_THREAD_JSON_BYTES * 8);
    const inline = decodeInferJson(new Uint8Array(json));
    let turns = 0;
    let done = false;
    const spin = (): void => {
      turns++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    const moved = Buffer.from(json); // decode() moves its buffer to the thread
    const { body, decoded } = await thread.decode(moved);
    done = true;
    assert.ok(turns > 0, 'the main event loop turned while the body was parsed');
    assert.equal(moved.length, 0, 'the body was moved, not copied');
    assert.equal(body.id, 'big');
    assert.deepEqual(body.outputs, [{ name: 'y' }]);
    assert.equal(body.inputs[0]?.data, undefined, 'the numbers do not travel back as JSON');
    assert.ok(decoded[0] instanceof Float32Array);
    assert.deepEqual(decoded[0], inline.decoded[0]);
  });

  test('errors keep their codes; small bodies are parsed at once', async () => {
    const broken = Buffer.concat([floatsBody(100_000), Buffer.from('}')]);
    assert.ok(broken.length >= OFF_THREAD_JSON_BYTES);
    await assert.rejects(thread.decode(broken), (e: PerchError) => e.code === 'PERCH_ERR_MALFORMED_JSON');
    const wrongShape = Buffer.from(floatsBody(100_000).toString().replace('"shape":[1,100000]', '"shape":[1,99999]'));
    await assert.rejects(thread.decode(wrongShape), (e: PerchError) => /shape \[1,99999\] needs 99999 elements/.test(e.message));
    await assert.rejects(thread.decode(Buffer.from('{"inputs":[]}')), (e: PerchError) => e.code === 'PERCH_ERR_INVALID_MESSAGE');
    assert.equal(thread.waiting, 0);
  });

  // The reply of a body nested 5,000 deep could not be deserialized on the main thread: it was
  // lost, the body stayed the thread's task for good, and every large body after it waited for
  // ever (a real perch serve: no answer to either). 600,000 deep, the clone threw on the thread
  // and ended it (500). The timeout is how the old code fails; the new one answers at once.
  test('values nested too deep to cross between the threads: a coded refusal, and the next body is parsed', { timeout: 60_000 }, async () => {
    const pad = ' '.repeat(OFF_THREAD_JSON_BYTES);
    for (const depth of [5_000, 600_000]) {
      const deep = Buffer.from(`{"parameters":{"x":${'['.repeat(depth)}${']'.repeat(depth)}},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}${pad}`);
      await assert.rejects(thread.decode(deep), (e: PerchError) => e.code === 'PERCH_ERR_INVALID_MESSAGE' && /too deeply/.test(e.message));
      const next = await thread.decode(floatsBody(100_000));
      assert.equal((next.decoded[0] as Float32Array).length, 100_000);
    }
  });

  test('a body whose client goes while it waits for the thread is dropped, not parsed', async () => {
    // The client's budget is given back when it goes; the queue went on holding its body and
    // parsed it all the same (the 12 MB JSON attack's clients leave as soon as they have sent).
    const hold = new ClientBudget(1024 ** 3).hold();
    const first = thread.decode(floatsBody(200_000));
    const second = thread.decode(floatsBody(200_001), hold);
    assert.equal(thread.waiting, 1);
    hold.release();
    assert.equal(thread.waiting, 0, 'dropped at once');
    await assert.rejects(second, (e: PerchError) => e.code === 'PERCH_ERR_CLIENT_GONE');
    assert.equal(((await first).decoded[0] as Float32Array).length, 200_000, 'the one on the thread is answered');
    await assert.rejects(thread.decode(floatsBody(200_002), hold), (e: PerchError) => e.code === 'PERCH_ERR_CLIENT_GONE', 'gone already: not queued');
  });

  test('one body at a time: the others wait their turn, each is answered', async () => {
    const bodies = [floatsBody(200_000), floatsBody(200_001), floatsBody(200_002)];
    const all = Promise.all(bodies.map((b) => thread.decode(b)));
    assert.equal(thread.waiting, 2, 'one parses, two wait');
    const answers = await all;
    assert.deepEqual(answers.map((a) => (a.decoded[0] as Float32Array).length), [200_000, 200_001, 200_002]);
    assert.equal(thread.waiting, 0);
  });
});

describe('a large JSON body over HTTP', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(4) } });
    rt = await startRuntime(repo.dir);
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  test('is answered as the same body small (whitespace makes it go to the parse thread)', async () => {
    const text = JSON.stringify(inferBody(vadInputs(3)));
    const small = await postJson(rt.baseUrl, '/v2/models/vad/infer', text);
    const large = await postJson(rt.baseUrl, '/v2/models/vad/infer', text + ' '.repeat(OFF_THREAD_JSON_BYTES + 1));
    assert.equal(small.status, 200, small.text);
    assert.equal(large.status, 200, large.text);
    assert.deepEqual(large.json, small.json);
  });

  test('is answered the same when its arrays of numbers are large enough to be read from the bytes (json-number-run.ts)', async () => {
    const text = JSON.stringify(inferBody(vadInputs(4)));
    // Spaces after every comma: each array of numbers takes more than MIN_RUN_BYTES.
    const spaced = text.replaceAll(',', `,${' '.repeat(200)}`);
    assert.ok(findNumberRuns(Buffer.from(spaced)).length > 0);
    const small = await postJson(rt.baseUrl, '/v2/models/vad/infer', text);
    const large = await postJson(rt.baseUrl, '/v2/models/vad/infer', spaced + ' '.repeat(OFF_THREAD_JSON_BYTES));
    assert.equal(small.status, 200, small.text);
    assert.equal(large.status, 200, large.text);
    assert.deepEqual(large.json, small.json);
  });
});

test('the parse thread ends when it has had nothing to parse for a while, and starts again for the next body', async () => {
  const thread = new JsonParseThread(50);
  try {
    const first = await thread.decode(floatsBody(100_000));
    assert.equal(first.body.id, 'big');
    // Ended by its idle timer: its heap and what the allocator kept of its parses go with it.
    await waitFor(() => !thread.running, 20_000, 'the idle parse thread to end');
    const second = await thread.decode(floatsBody(100_000));
    assert.equal(second.body.id, 'big');
    assert.equal((second.decoded[0] as Float32Array).length, 100_000);
  } finally {
    await thread.close();
  }
});
