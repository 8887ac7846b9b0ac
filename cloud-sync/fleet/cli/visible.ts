// What devices send reaches the operator's terminal through `perch fleet`'s output: error codes
// and messages, ignored reasons, event types and payloads. A terminal acts on control characters
// (ESC sequences clear the screen, rewrite earlier lines, set the title or, with OSC 52, the
// clipboard; a carriage return overwrites a line) and bidi controls reorder what is shown, so a
// device could make a failed device look healthy or worse (docs/fleet.md "Exit codes and
// errors"). Every such character is written as a visible \uXXXX escape, which is also what it
// means inside a JSON string, so --json output stays the same JSON.
// C0 controls but \t and \n, DEL, C1 controls, and the bidi marks, embeddings, overrides and
// isolates: matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// In a table cell a line break or a tab would also forge rows or columns.
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_CELL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `s` with every control and bidi character as a visible \uXXXX (line breaks and tabs too when `cell`). */
export function visible(s: string, cell = false): string {
  return s.replace(cell ? UNSAFE_IN_CELL : UNSAFE, escape);
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
