// A real pino logger (runtime/log.ts) whose JSON lines land in an array, so a test can wait for
// what the code says it did instead of sleeping.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../runtime/log.js';

export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('debug', stream), lines };
}
