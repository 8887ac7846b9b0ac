// A real pino logger (runtime/base/log.ts) whose JSON lines land in an array, so a test can wait for
// what the code says it did instead of sleeping, and check what an operator would read.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../runtime/base/log.js';

export interface LogLine extends Record<string, unknown> {
  level: number;
  msg: string;
}

export function captureLogger(level: 'debug' | 'info' = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { logger: createLogger(level, stream), lines };
}

/** pino's levels: warn 40, error 50. */
export const WARN = 40;
export const ERROR = 50;
