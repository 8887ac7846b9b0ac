// What devices send reaches the operator's terminal through `perch fleet`'s output: error codes
// and messages, ignored reasons, event types and payloads. A terminal acts on control characters
// (ESC sequences clear the screen, rewrite earlier lines, set the title or, with OSC 52, the
// clipboard; a carriage return overwrites a line) and bidi controls reorder what is shown, so a
// device could make a failed device look healthy or worse (docs/fleet.md "Exit codes and
// errors"). Every such character is written as a visible \uXXXX escape, which is also what it
// means inside a JSON string, so --json output stays the same JSON.
import { CONTROLS_PAST_C0, escapeChar } from '../../../runtime/base/visible-text.js';

// C0 controls but \t and \n, then what JSON leaves raw too (runtime/base/visible-text.ts):
// matching control characters is the point here.
const UNSAFE = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f${CONTROLS_PAST_C0}]`, 'g');
// In a table cell a line break or a tab would also forge rows or columns.
const UNSAFE_IN_CELL = new RegExp(`[\\u0000-\\u001f${CONTROLS_PAST_C0}]`, 'g');

/** `s` with every control and bidi character as a visible \uXXXX (line breaks and tabs too when `cell`). */
export function visible(s: string, cell = false): string {
  return s.replace(cell ? UNSAFE_IN_CELL : UNSAFE, escapeChar);
}

/**
 * Characters a table cell shows at most (device ids, 128, whole). Every row is padded to the
 * widest cell of its column, so one device's 900 KB error code made `perch fleet devices` of 301
 * devices print 272 MB (1.2 GB RSS); `--json` keeps the text whole.
 */
export const MAX_CELL = 160;

/** `s` as visible(s, true), cut to `max` characters with a '…' (never inside an escape or a surrogate pair). */
export function visibleCell(s: string, max = MAX_CELL): string {
  // Escapes only lengthen: the first max + 1 characters decide.
  const v = visible(s.length > max ? s.slice(0, max + 1) : s, true);
  if (v.length <= max) return v;
  let cut = max - 1;
  const esc = v.lastIndexOf('\\u', cut);
  if (esc >= 0 && esc > cut - 6 && /^\\u[0-9a-f]{4}/.test(v.slice(esc, esc + 6))) cut = esc;
  if (cut > 0 && /[\ud800-\udbff]/.test(v[cut - 1] ?? '')) cut--;
  return `${v.slice(0, cut)}…`;
}

/**
 * `to`, with every control character written to it made visible. Each write goes through at
 * once (no buffering of its own: what a command wrote is out when it returns); the commands only
 * call write().
 */
export function visibleOutput(to: NodeJS.WritableStream): NodeJS.WritableStream {
  return new Proxy(to, {
    get(target, prop, receiver) {
      if (prop !== 'write') return Reflect.get(target, prop, receiver) as unknown;
      return (chunk: string | Uint8Array, ...rest: unknown[]): boolean =>
        (target.write as (c: string, ...r: unknown[]) => boolean)(visible(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')), ...rest);
    },
  });
}
