// One WebSocket message's answer (runtime/api/ws/connection.ts): a handler answers once, with a
// reply or a failure, and later calls are ignored, so a message is never answered twice
// (docs/api.md; test/api/answered-once.test.ts).
import type { MessageId } from './frame.js';

export interface Reply {
  /** The answer object; `id` is added. */
  body: Record<string, unknown>;
  /**
   * An inference's `result` as JSON text already (encode-response.ts encodeResultJson): the
   * answer is {"id", "ok": true, "result"} with it, and `body` is not read.
   */
  resultJson?: string;
  /** Binary tensor bytes: sent as a binary frame after the JSON header. */
  chunks?: Uint8Array[];
}

/** How a handler answers one message: once, with a reply or a failure (later calls are ignored). */
export interface Answer {
  reply(reply: Reply): void;
  fail(err: unknown): void;
}

/** What a FrameAnswer answers through: the connection that received the message. */
export interface Answering {
  answer(id: MessageId | null, reply: Reply | null, failure: unknown, cost: number): void;
}

/** One message's slot: its id (once parsed) and its frame's bytes, let go with its answer. */
export class FrameAnswer implements Answer {
  id: MessageId | null = null;
  private done = false;

  constructor(
    private readonly conn: Answering,
    readonly cost: number,
  ) {}

  reply(reply: Reply): void {
    if (this.done) return;
    this.done = true;
    this.conn.answer(this.id, reply, null, this.cost);
  }

  fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.conn.answer(this.id, null, err, this.cost);
  }
}
