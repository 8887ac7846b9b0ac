// Large JSON arrays of numbers read straight from the body's bytes into a tensor (docs/reliability.md
// "Large JSON bodies"). JSON.parse of a 12 MB body of short numbers held the text as a string
// (12 MB), a JS array of 6 million numbers growing as it parsed (48 MB, and the copies it grew
// from), and then the tensor (24 MB of FP32): the largest part of the 12 MB JSON attack's peak
// once bodies are admitted one at a time. Here each large array of numbers (nested or flat) is
// found in the bytes, checked against JSON's grammar, counted, and left out of what JSON.parse
// sees; the tensor is then filled from the bytes, one number at a time, with the same values
// JSON.parse gives (test/tensor/json-number-run.test.ts holds it to that on fuzzed input).

/** Arrays shorter than this are left to JSON.parse (a run costs a placeholder and a second pass). */
export const MIN_RUN_BYTES = 64 * 1024;
/** Arrays nested deeper than this end the search: the body is parsed as it is (tensors have few axes). */
const MAX_DEPTH = 64;

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, OPEN = 0x5b, CLOSE = 0x5d, COMMA = 0x2c;
const MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e, ZERO = 0x30, NINE = 0x39, E_LOWER = 0x65, E_UPPER = 0x45;

const isDigit = (b: number): boolean => b >= ZERO && b <= NINE;
const isSpace = (b: number): boolean => b === SPACE || b === LF || b === CR || b === TAB;

/** Exact powers of ten as doubles (10^22 is the largest). */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/**
 * A JSON array holding only numbers and arrays of numbers, still as bytes: `json[start, end)`.
 * `count` numbers in all, nested `depth` arrays deep (1: flat).
 */
export class NumberRun {
  constructor(
    readonly json: Uint8Array,
    readonly start: number,
    readonly end: number,
    readonly count: number,
    readonly depth: number,
  ) {}

  /** The array as JSON.parse gives it (for a run found where no tensor's data is). */
  toJson(): unknown {
    return JSON.parse(Buffer.from(this.json.buffer, this.json.byteOffset + this.start, this.end - this.start).toString('latin1'));
  }

  /** Calls `each` with every number, in order (row-major, as a nested array flattens). */
  forEach(each: (value: number, index: number) => void): void {
    readNumbers(this.json, this.start, this.end, each);
  }
}

/** The value of the JSON number `b[i, stop)`, as JSON.parse reads it. */
export function numberAt(b: Uint8Array, i: number, stop: number): number {
  let value = Number.NaN;
  readNumbers(b, i, stop, (v) => (value = v));
  return value;
}

/**
 * Calls `each` with the value of every number in `b[start, end)`, a span already checked against
 * JSON's grammar (findNumberRuns), as JSON.parse reads it. Up to 15 significant digits and a power
 * of ten up to 22 the value is exact arithmetic on exact doubles with one rounding (Clinger's fast
 * path, the one every correct parser takes first); anything else is read by Number(), which rounds
 * the way JSON.parse does (both are ECMAScript's StringToNumber), from text decoded 64 KiB at a time
 * (or the whole number, when it is longer).
 */
function readNumbers(b: Uint8Array, start: number, end: number, each: (value: number, index: number) => void): void {
  let text = '';
  let textStart = 0;
  const slow = (from: number, to: number): number => {
    if (from < textStart || to > textStart + text.length) {
      // At least the whole number: one longer than the window (a million digits and an exponent
      // are valid JSON) was read cut at 64 KiB, a wrong value (0.5 written in 1 MB read as 0).
      textStart = from;
      text = Buffer.from(b.buffer, b.byteOffset + from, Math.min(end, from + Math.max(65_536, to - from)) - from).toString('latin1');
    }
    return Number(text.slice(from - textStart, to - textStart));
  };
  let n = 0;
  let i = start;
  while (i < end) {
    let c = b[i] as number;
    if (c !== MINUS && (c < ZERO || c > NINE)) {
      i++;
      continue;
    }
    const from = i;
    const negative = c === MINUS;
    if (negative) c = b[++i] as number;
    let mantissa = 0;
    let digits = 0;
    let scale = 0;
    while (c >= ZERO && c <= NINE && i < end) {
      mantissa = mantissa * 10 + (c - ZERO);
      digits++;
      c = b[++i] as number;
    }
    if (c === DOT && i < end) {
      c = b[++i] as number;
      while (c >= ZERO && c <= NINE && i < end) {
        mantissa = mantissa * 10 + (c - ZERO);
        digits++;
        scale--;
        c = b[++i] as number;
      }
    }
    let exact = digits <= 15;
    if ((c === E_LOWER || c === E_UPPER) && i < end) {
      c = b[++i] as number;
      const expNegative = c === MINUS;
      if (c === MINUS || c === PLUS) c = b[++i] as number;
      let exp = 0;
      let expDigits = 0;
      while (c >= ZERO && c <= NINE && i < end) {
        exp = exp * 10 + (c - ZERO);
        expDigits++;
        c = b[++i] as number;
      }
      if (expDigits > 4) exact = false;
      scale += expNegative ? -exp : exp;
    }
    let v: number;
    if (!exact || scale > 22 || scale < -22) v = slow(from, i);
    else {
      v = scale >= 0 ? mantissa * (POW10[scale] as number) : mantissa / (POW10[-scale] as number);
      if (negative) v = -v;
    }
    each(v, n++);
  }
}

/**
 * The end of the JSON number that starts at `i` if it follows JSON's grammar
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), else -1.
 */
function scanNumber(b: Uint8Array, i: number, end: number): number {
  let j = i;
  if (b[j] === MINUS) j++;
  if (j >= end) return -1;
  if (b[j] === ZERO) j++;
  else if (isDigit(b[j] as number)) while (j < end && isDigit(b[j] as number)) j++;
  else return -1;
  if (j < end && b[j] === DOT) {
    j++;
    if (!(j < end && isDigit(b[j] as number))) return -1;
    while (j < end && isDigit(b[j] as number)) j++;
  }
  if (j < end && (b[j] === E_LOWER || b[j] === E_UPPER)) {
    j++;
    if (j < end && (b[j] === PLUS || b[j] === MINUS)) j++;
    if (!(j < end && isDigit(b[j] as number))) return -1;
    while (j < end && isDigit(b[j] as number)) j++;
  }
  return j;
}

interface Open {
  start: number;
  count: number;
  depth: number;
  /** After '[' or ',' a value comes next; after a value, ',' or ']'. */
  wantValue: boolean;
  /** Nothing yet: ']' may close it (an empty array). */
  empty: boolean;
}

/**
 * The arrays of `json` (outside strings) that hold only numbers and arrays of numbers, follow
 * JSON's grammar and take MIN_RUN_BYTES or more, outermost only, in order. Empty when there are
 * none or when arrays nest deeper than MAX_DEPTH. Anything else in the text is JSON.parse's to
 * judge: a run is a JSON value, so putting another value in its place keeps the text as valid
 * (or invalid) as it was.
 */
export function findNumberRuns(json: Uint8Array, minBytes = MIN_RUN_BYTES): NumberRun[] {
  const runs: NumberRun[] = [];
  const stack: Open[] = [];
  // Arrays stack[0 .. tainted) hold something other than numbers: none of them is a run.
  let tainted = 0;
  const taint = (): void => {
    tainted = stack.length;
  };
  const end = json.length;
  let i = 0;
  while (i < end) {
    const c = json[i] as number;
    if (c === QUOTE) {
      taint();
      i++;
      while (i < end && json[i] !== QUOTE) i += json[i] === BACKSLASH ? 2 : 1;
      i++;
      continue;
    }
    const top = stack.length > tainted ? stack[stack.length - 1] : undefined;
    if (isSpace(c)) {
      i++;
    } else if (c === OPEN) {
      if (stack.length === MAX_DEPTH) return [];
      if (top) {
        if (!top.wantValue) taint();
        top.wantValue = false;
        top.empty = false;
      }
      stack.push({ start: i, count: 0, depth: 1, wantValue: true, empty: true });
      i++;
    } else if (c === CLOSE) {
      const open = stack.pop();
      if (open && top === open && (open.empty || !open.wantValue)) {
        const parent = stack.length > tainted ? stack[stack.length - 1] : undefined;
        if (parent) {
          parent.count += open.count;
          parent.depth = Math.max(parent.depth, open.depth + 1);
        }
        if (i + 1 - open.start >= minBytes) {
          while (runs.length > 0 && (runs[runs.length - 1] as NumberRun).start > open.start) runs.pop(); // inside this one
          runs.push(new NumberRun(json, open.start, i + 1, open.count, open.depth));
        }
      } else if (open) {
        taint();
      }
      if (tainted > stack.length) tainted = stack.length;
      i++;
    } else if (c === COMMA) {
      if (top) {
        if (top.wantValue) taint();
        else top.wantValue = true;
      }
      i++;
    } else if (top && top.wantValue && (c === MINUS || isDigit(c))) {
      const next = numbersIn(json, i, end, top);
      if (next < 0) {
        taint();
        i = -next;
      } else {
        i = next;
      }
    } else if (c === MINUS || isDigit(c)) {
      // A number outside an array of numbers (or where a ',' was due): JSON.parse judges it.
      if (top) taint();
      const stop = scanNumber(json, i, end);
      i = stop < 0 ? i + 1 : stop;
    } else {
      taint(); // an object, a literal, ':' or a stray byte
      i++;
    }
  }
  return runs;
}

/**
 * The numbers, commas and spaces of the array `top` from `i`, where a number is due: counted,
 * and where they stop (at a ']', a '[' or anything else, for the caller). Minus that position
 * when they break JSON's grammar (two numbers with no ',' between, two ',').
 */
function numbersIn(json: Uint8Array, i: number, end: number, top: Open): number {
  let wantValue = true;
  let count = top.count;
  let j = i;
  let broken = false;
  while (j < end) {
    const c = json[j] as number;
    if (c === COMMA) {
      if (wantValue) {
        broken = true;
        break;
      }
      wantValue = true;
      j++;
    } else if (c === SPACE || c === LF || c === CR || c === TAB) {
      j++;
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const stop = scanNumber(json, j, end);
      if (!wantValue || stop < 0 || (stop < end && !isDelimiter(json[stop] as number))) {
        broken = true;
        break;
      }
      count++;
      wantValue = false;
      j = stop;
    } else {
      break;
    }
  }
  top.count = count;
  top.wantValue = wantValue;
  top.empty = false;
  return broken ? -Math.max(j, i + 1) : j;
}

function isDelimiter(c: number): boolean {
  return c === COMMA || c === CLOSE || isSpace(c);
}
