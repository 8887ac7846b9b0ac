// gRPC clients that do not read their answers (docs/grpc.md "Auth and limits"; docs/reliability.md
// "Clients that do not read"). HTTP/2 flow control lets a client take no DATA at all (a window of
// 0, or a socket it never reads), and grpc-js then holds every answer written to it. Red-team
// pass: two connections of eight ModelStreamInfer streams that never read held 274 MB of client
// budget (twice the whole of it) for as long as they stayed, every HTTP body refused 429 meanwhile,
// and unary answers were not counted at all once handed to grpc-js. As for HTTP and WebSocket
// answers, an answer that is not taken within server.slowReaderTimeoutMs cuts its call off:
// its HTTP/2 stream is reset (RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients report as
// RESOURCE_EXHAUSTED) and what it held is given back. A status cannot say why: trailers go out
// after the answers the client does not take.
import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Clock, TimerHandle } from '../../base/clock.js';
import type { Logger } from '../../base/log.js';
import type { Hold } from '../client-budget.js';

export interface SlowReaderOptions {
  slowReaderTimeoutMs: number;
  clock: Clock;
  log: Logger;
}

/**
 * The HTTP/2 stream of a grpc-js server call. grpc-js gives a handler no way to reset its call
 * (only a status, which waits behind the unread answers); its BaseServerInterceptingCall keeps the
 * stream as `stream`, at the end of the chain of ServerInterceptingCalls (`nextCall`) the server's
 * interceptors make (library-statuses.ts), which is the handler's `call.call` (grpc-js 1.14).
 * test/grpc/slow-readers.test.ts fails if that moves.
 */
export function http2StreamOf(call: object): ServerHttp2Stream | null {
  let c = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof c === 'object' && c !== null; depth++) {
    const s = (c as { stream?: unknown }).stream;
    if (typeof s === 'object' && s !== null && typeof (s as ServerHttp2Stream).close === 'function' && 'rstCode' in s) return s as ServerHttp2Stream;
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return null;
}

/** Resets the call's stream: everything written to it and not sent is dropped. */
export function cutOff(stream: ServerHttp2Stream | null, o: SlowReaderOptions, what: string): void {
  if (!stream || stream.closed) return;
  o.log.warn({ what, timeoutMs: o.slowReaderTimeoutMs }, 'gRPC client does not read its answers: cut off');
  stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
}

/**
 * A unary answer is held of the budget until its stream is done (the answer and trailers sent);
 * one still not sent after slowReaderTimeoutMs resets the stream, which gives it back.
 */
export function holdUntilSent(stream: ServerHttp2Stream | null, hold: Hold, o: SlowReaderOptions): void {
  if (!stream || stream.closed || stream.destroyed) {
    hold.release();
    return;
  }
  const timer = o.clock.setTimeout(() => cutOff(stream, o, 'ModelInfer'), o.slowReaderTimeoutMs);
  stream.once('close', () => {
    o.clock.clearTimeout(timer);
    hold.release();
  });
}

/** Unwritten answer bytes a stream may have with no answer sent before the clock runs (as a WebSocket's). */
export const STALL_BYTES = 64 * 1024;

/**
 * A ModelStreamInfer stream's clock: while more than STALL_BYTES of its answers are unwritten,
 * an answer must be sent at least every slowReaderTimeoutMs, else the stream is cut off. Checked
 * by its own timer, not at writes: a stream that does not read gets no more write callbacks.
 */
export class StreamReaderClock {
  private timer: TimerHandle | null = null;
  /** When answers started waiting, or the last answer sent since; null while none wait. */
  private since: number | null = null;
  private stopped = false;

  constructor(private readonly stream: ServerHttp2Stream | null, private readonly o: SlowReaderOptions, private readonly unwritten: () => number) {}

  /** An answer was handed on: the clock starts again. */
  sent(): void {
    this.since = null;
    this.check();
  }

  /** After a write or a send: runs the clock if answers wait. */
  check(): void {
    if (this.stopped || this.unwritten() <= STALL_BYTES) {
      this.since = null;
      return;
    }
    this.since ??= this.o.clock.now();
    this.timer ??= this.o.clock.setTimeout(() => this.fire(), Math.max(1, this.since + this.o.slowReaderTimeoutMs - this.o.clock.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private fire(): void {
    this.timer = null;
    if (this.stopped || this.unwritten() <= STALL_BYTES || this.since === null) return this.check();
    if (this.o.clock.now() - this.since >= this.o.slowReaderTimeoutMs) {
      this.stop();
      cutOff(this.stream, this.o, 'ModelStreamInfer');
      return;
    }
    this.check();
  }
}
