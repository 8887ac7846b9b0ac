// Large JSON arrays of numbers read straight from the bytes (runtime/tensor/json-number-run.ts,
// docs/reliability.md "Large JSON bodies"): every number reads as JSON.parse reads it, and a
// body decoded this way (the parse thread's path) gives the tensors, the body and the errors the
// plain path gives, on fuzzed bodies: every JSON number form, nesting, whitespace, key orders,
// numbers where no tensor's data is, and bodies broken a byte at a time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeInferJson, decodeLargeInferJson, type DecodedBody } from '../../runtime/api/json-thread/decode-body.js';
import { parseWithNumberRuns } from '../../runtime/api/json-thread/parse-runs.js';
import { PerchError } from '../../runtime/base/errors.js';
import { DATATYPES } from '../../runtime/tensor/datatypes.js';
import { findNumberRuns, NumberRun, numberAt } from '../../runtime/tensor/json-number-run.js';
// A seeded generator (mulberry32): a failing case is told by its seed.
import { rng as random } from '../helpers/models.js';

const digits = (r: () => number, n: number): string => Array.from({ length: n }, () => String(Math.floor(r() * 10))).join('');

/** A JSON number in any of the grammar's forms, or (`wild`) a double written by JavaScript. */
function numberText(r: () => number): string {
  const pick = r();
  if (pick < 0.15) return String(Math.floor(r() * 3)); // short integers, as the attack sends
  if (pick < 0.3) return JSON.stringify((r() - 0.5) * 10 ** Math.floor(r() * 40 - 20));
  if (pick < 0.35) return ['0', '-0', '0.0', '-0.0e0', '1e308', '1e309', '-1e400', '5e-324', '2e-324', '1e-400', '9007199254740993', '123456789012345678901234567890'][Math.floor(r() * 12)] as string;
  const sign = r() < 0.3 ? '-' : '';
  const int = r() < 0.3 ? '0' : String(1 + Math.floor(r() * 9)) + digits(r, Math.floor(r() * 20));
  const frac = r() < 0.5 ? `.${digits(r, 1 + Math.floor(r() * 20))}` : '';
  const exp = r() < 0.4 ? `${r() < 0.5 ? 'e' : 'E'}${['', '+', '-'][Math.floor(r() * 3)]}${digits(r, 1 + Math.floor(r() * 4))}` : '';
  return sign + int + frac + exp;
}

const SPACES = ['', '', '', ' ', '\n', '\t', '\r\n ', '  '];
const space = (r: () => number): string => SPACES[Math.floor(r() * SPACES.length)] as string;

/** An array of `count` numbers, nested at random (up to `depth` deep), with JSON whitespace. */
function numbersText(r: () => number, count: number, depth: number): string {
  if (depth <= 1 || r() < 0.5) return `[${space(r)}${Array.from({ length: count }, () => numberText(r)).join(`${space(r)},${space(r)}`)}${space(r)}]`;
  const parts: string[] = [];
  let left = count;
  while (left > 0 || (parts.length === 0 && r() < 0.5)) {
    const n = Math.min(left, Math.floor(r() * 5));
    parts.push(numbersText(r, n, depth - 1));
    left -= n;
  }
  return `[${parts.join(',')}]`;
}

/** An OIP body: 1-3 inputs of random datatypes (data that fits them or not), keys in any order. */
function bodyText(r: () => number): string {
  const inputs = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, i) => {
    const datatype = DATATYPES[Math.floor(r() * DATATYPES.length)] as string;
    const shape = Array.from({ length: Math.floor(r() * 3) }, () => Math.floor(r() * 4));
    const count = shape.reduce((a, b) => a * b, 1) + (r() < 0.15 ? 1 : 0);
    let data = numbersText(r, count, shape.length + (r() < 0.2 ? 1 : 0));
    const odd = r();
    if (odd < 0.05) data = data.replace(/\d(?=\])/, '"7"'); // a string among the numbers
    else if (odd < 0.1) data = data.replace(/\d(?=\])/, 'true');
    else if (odd < 0.13) data = `[${data},{"a":[1,2]}]`;
    const fields = [`"name":"in${i}"`, `"datatype":"${datatype}"`, `"shape":${JSON.stringify(shape)}`, `"data"${space(r)}:${space(r)}${data}`];
    if (r() < 0.15) fields.push(`"parameters":{"data":${numbersText(r, 3, 2)},"binary_data_size":${r() < 0.5 ? 0 : 1}}`);
    if (r() < 0.05) fields.push(`"data":${numbersText(r, count, 1)}`); // a second data: the last one counts
    fields.sort(() => r() - 0.5);
    return `{${fields.join(',')}}`;
  });
  const top = [`"inputs":[${inputs.join(`,${space(r)}`)}]`];
  if (r() < 0.3) top.push(`"id":"x"`);
  if (r() < 0.2) top.push(`"parameters":{"data":${numbersText(r, 4, 2)},"list":[[1,2],[3]]}`);
  if (r() < 0.1) top.push(`"data":[1,2,3]`);
  if (r() < 0.1) top.push(`"outputs":[{"name":"y","data":[0]}]`);
  top.sort(() => r() - 0.5);
  return `${space(r)}{${top.join(',')}}${space(r)}`;
}

/** A body with one byte put in, taken out or changed. */
function broken(r: () => number, text: string): string {
  const at = Math.floor(r() * text.length);
  const byte = [',', ']', '[', '-', '.', 'e', '0', '9', ' ', '"', '}', 'x', '+', '\v'][Math.floor(r() * 14)] as string;
  const how = r();
  if (how < 0.4) return text.slice(0, at) + byte + text.slice(at);
  if (how < 0.7) return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + byte + text.slice(at + 1);
}

type Outcome = { ok: true; value: DecodedBody } | { ok: false; error: PerchError };

function outcome(f: () => DecodedBody): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    assert.ok(err instanceof PerchError, `a PerchError, not ${String(err)}`);
    return { ok: false, error: err };
  }
}

const bytesOf = (v: unknown): unknown => (ArrayBuffer.isView(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v);

/** The plain path and the runs path give the same body, the same tensors (bit for bit), the same error. */
function sameOutcome(text: string, seed: number): void {
  const json = Buffer.from(text);
  const plain = outcome(() => decodeInferJson(new Uint8Array(json)));
  const runs = outcome(() => decodeLargeInferJson(new Uint8Array(json), 1)); // every array of numbers a run
  const what = `seed ${seed}: ${text.slice(0, 300)}`;
  assert.equal(runs.ok, plain.ok, `${what}\nplain: ${plain.ok ? 'ok' : plain.error.message}\nruns: ${runs.ok ? 'ok' : runs.error.message}`);
  if (!plain.ok && !runs.ok) {
    assert.equal(runs.error.code, plain.error.code, what);
    // A JSON syntax error's position is in the text JSON.parse saw, which differs; the rest is word for word.
    if (plain.error.code !== 'PERCH_ERR_MALFORMED_JSON') assert.equal(runs.error.message, plain.error.message, what);
    return;
  }
  if (plain.ok && runs.ok) {
    assert.deepStrictEqual(runs.value.body, plain.value.body, what);
    assert.deepStrictEqual(runs.value.decoded.map((d) => (Array.isArray(d) ? d.map(bytesOf) : bytesOf(d))), plain.value.decoded.map((d) => (Array.isArray(d) ? d.map(bytesOf) : bytesOf(d))), what);
  }
}

describe('JSON arrays of numbers read from the bytes', () => {
  test('every JSON number form reads as JSON.parse reads it', () => {
    fc.assert(fc.property(fc.integer(), (seed) => {
      const r = random(seed);
      for (let k = 0; k < 50; k++) {
        const t = numberText(r);
        const b = Buffer.from(t);
        assert.ok(Object.is(numberAt(b, 0, b.length), JSON.parse(t) as number), `${t}: ${numberAt(b, 0, b.length)} vs ${JSON.parse(t) as number}`);
      }
    }), { numRuns: 400 });
    for (const d of [0.1, 1 / 3, Math.PI, 5e-324, Number.MAX_VALUE, Number.MIN_VALUE, 123456789012345, 0.000001, 1e21, 1e22, 1e23]) {
      for (const t of [String(d), String(-d), d.toExponential(), d.toPrecision(17)]) {
        const b = Buffer.from(t);
        assert.ok(Object.is(numberAt(b, 0, b.length), JSON.parse(t) as number), t);
      }
    }
  });

  test('a number longer than the 64 KiB text window reads whole (a million digits are valid JSON)', () => {
    // Read cut at 64 KiB, `0.000...05e70000` was 0 and `1000...0e-70000` Infinity: a wrong value
    // in the tensor, not a refusal (found by the red-team pass of session 15).
    const r = random(15);
    for (let k = 0; k < 12; k++) {
      const zeros = 65_536 + Math.floor(r() * 70_000);
      const lead = String(1 + Math.floor(r() * 9));
      const forms = [`0.${'0'.repeat(zeros)}${lead}5e${zeros + 1}`, `-${lead}${'0'.repeat(zeros)}e-${zeros}`, `${lead}.${digits(r, zeros)}`];
      for (const t of forms) {
        const b = Buffer.from(t);
        assert.ok(Object.is(numberAt(b, 0, b.length), JSON.parse(t) as number), `${t.slice(0, 20)}... (${t.length} chars): ${numberAt(b, 0, b.length)} vs ${JSON.parse(t) as number}`);
      }
      // In a body, beside short numbers, as the parse thread reads it (runs of MIN_RUN_BYTES and more).
      const data = `[0.25,${forms.join(',')},-3]`;
      sameOutcome(`{"inputs":[{"name":"x","datatype":"FP64","shape":[5],"data":${data}}]}`, k);
    }
  });

  test('a fuzzed body decodes to what the plain path decodes, whole or broken a byte at a time', () => {
    fc.assert(fc.property(fc.integer(), (seed) => {
      const r = random(seed);
      const text = bodyText(r);
      sameOutcome(text, seed);
      sameOutcome(broken(r, text), seed);
      sameOutcome(broken(r, broken(r, text)), seed);
    }), { numRuns: 1500 });
  });

  test('only well-formed arrays of numbers are runs, outermost only; deep nesting leaves the text to JSON.parse', () => {
    const runs = (t: string): string[] => findNumberRuns(Buffer.from(t), 1).map((run) => t.slice(run.start, run.end));
    assert.deepEqual(runs('{"a":[1,[2,3]],"b":["x",[4]],"c":[1,,2],"d":[1 2],"e":[01],"f":[1,],"g":[[]],"h":"[5]"}'), ['[1,[2,3]]', '[4]', '[[]]']);
    assert.deepEqual(runs(`{"a":${'['.repeat(70)}1${']'.repeat(70)}}`), []);
    const run = findNumberRuns(Buffer.from('[[1,2],[3],[]]'), 1)[0] as NumberRun;
    assert.equal(run.count, 3);
    assert.equal(run.depth, 2);
    const seen: number[] = [];
    run.forEach((v) => seen.push(v));
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test('a large body of short numbers: its data becomes the tensor without a JS array; other large arrays come back as arrays', () => {
    const n = 300_000;
    const zeros = `[${'0,'.repeat(n - 1)}0]`;
    const text = `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,${n}],"data":${zeros}}],"parameters":{"data":${zeros}}}`;
    const parsed = parseWithNumberRuns(Buffer.from(text)) as { inputs: Array<{ data: unknown }>; parameters: { data: unknown } };
    assert.ok(parsed.inputs[0]?.data instanceof NumberRun, 'the input data stays in the bytes');
    assert.ok(Array.isArray(parsed.parameters.data) && parsed.parameters.data.length === n, 'a parameter is JSON.parse\'s array');
    const { decoded } = decodeLargeInferJson(Buffer.from(text));
    assert.ok(decoded[0] instanceof Float32Array && decoded[0].length === n);
  });
});
