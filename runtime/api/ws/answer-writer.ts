// Writes one WebSocket connection's messages (connection.ts): answers, refusals, notifications.
// Each is JSON text, or a binary frame of a JSON header and tensor bytes; the bytes ws has not
// yet handed to the kernel are counted in the client budget (client-budget.ts: the unread
// answers) until its callback, and the socket is corked until the end of the tick so that the
// answers of one batch leave together.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Hold } from '../client-budget.js';
import type { Reply } from './answer.js';
import { binaryFrameOf, type MessageId } from './frame.js';

export class AnswerWriter {
  private corked = false;

  constructor(
    private readonly socket: WebSocket,
    /** The TCP socket under `socket`: corked so that answers finished together leave together. */
    private readonly transport: Duplex,
    private readonly hold: Hold,
    /** The connection's flow control, told when a message is queued and when ws has written one. */
    private readonly flow: () => void,
  ) {}

  /** A message's reply; the caller updates the flow right after (its slot is let go). */
  reply(id: MessageId | null, reply: Reply): void {
    if (reply.resultJson !== undefined) {
      // As JSON.stringify({ id, ok: true, result }) writes it.
      this.sendJson(`{"id":${JSON.stringify(id)},"ok":true,"result":${reply.resultJson}}`, reply.chunks, false);
    } else {
      this.send({ id, ...reply.body }, reply.chunks);
    }
  }

  send(body: Record<string, unknown>, chunks?: Uint8Array[]): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.sendJson(JSON.stringify(body), chunks);
  }

  /**
   * `json`: the message's JSON text; with `chunks`, the header of a binary frame. `flow`: false
   * when the caller updates the flow itself right after (an answer, as its slot is let go).
   */
  private sendJson(json: string, chunks?: Uint8Array[], flow = true): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    const payload = chunks?.length ? binaryFrameOf(json, chunks) : json;
    // Held until ws has handed it to the kernel (its callback); a string's length stands in for its UTF-8 size.
    const size = payload.length;
    this.hold.addUnread(size);
    this.cork();
    this.socket.send(payload, () => {
      this.hold.subUnread(size);
      this.flow();
    });
    if (flow) this.flow();
  }

  /**
   * A finished batch answers all its requests in the same tick; without this each answer was
   * its own writev syscall (the biggest single cost on the main thread under load). Corked until
   * the end of the tick, they leave in one. ws corks and uncorks around each frame itself; the
   * socket counts nested corks, so ours holds until the tick ends.
   */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.transport.cork();
    process.nextTick(() => {
      this.corked = false;
      this.transport.uncork();
    });
  }
}
