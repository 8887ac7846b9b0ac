// Peers' words reach an operator's terminal: devices' error codes and reasons through `perch
// fleet`'s output (cloud-sync/fleet/cli/visible.ts), clients' and devices' words through log
// lines (log.ts). A terminal acts on control characters and bidi controls reorder what is shown
// (docs/fleet.md "Exit codes and errors"), so such characters are written as a visible \uXXXX
// escape, which is also what they mean inside a JSON string: JSON output stays the same JSON.

/**
 * DEL, the C1 controls (U+0080-U+009F: U+009B is a CSI to terminals that take C1 in UTF-8, as
 * xterm does) and the bidi marks, embeddings, overrides and isolates, as the inside of a regular
 * expression's character class. JSON.stringify escapes the C0 controls itself, not these.
 */
export const CONTROLS_PAST_C0 = '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';

/** One character as a \uXXXX escape. */
export const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

const IN_JSON = new RegExp(`[${CONTROLS_PAST_C0}]`, 'g');

/**
 * A serialised JSON line with the characters JSON leaves raw escaped: outside a JSON string they
 * are never part of a JSON line. A line holding none comes back as it was (one scan).
 */
export function visibleJsonLine(line: string): string {
  return line.replace(IN_JSON, escapeChar);
}
