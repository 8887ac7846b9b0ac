import { pino, type Logger, type LevelWithSilent } from 'pino';
import { visibleJsonLine } from './visible-text.js';

export type { Logger };

/** JSON lines on stdout (pino's fast path); the level can change at run time (live config). */
export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  return pino(
    // Log lines carry peers' words to an operator's terminal (`journalctl -f`, a foreground
    // serve): what JSON leaves raw is escaped (visible-text.ts, docs/fleet.md).
    { name: 'perch', level, base: { pid: process.pid }, hooks: { streamWrite: visibleJsonLine } },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and tools that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
