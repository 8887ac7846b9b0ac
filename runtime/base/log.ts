import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

// JSON escapes the C0 controls in strings, but not DEL, the C1 controls (U+0080-U+009F: U+009B
// is a CSI to terminals that take C1 in UTF-8, as xterm does) nor the bidi controls, and log lines
// carry peers' words (devices' topics and error messages in `perch fleet serve`, clients' in
// `perch serve`) to an operator's terminal (`journalctl -f`, a foreground serve). They are
// written as \uXXXX, which means the same character inside a JSON string; outside one these
// characters are never part of a JSON line. Most lines hold none: one test per line.
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const HAS_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const escape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** A serialised log line with the characters above escaped (docs/config.md `log.level`, docs/fleet.md). */
export function visibleLine(line: string): string {
  return HAS_UNSAFE.test(line) ? line.replace(UNSAFE, escape) : line;
}

/** JSON lines on stdout (pino's fast path); the level can change at run time (live config). */
export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { name: 'perch', level, base: { pid: process.pid }, hooks: { streamWrite: visibleLine } },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and tools that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
