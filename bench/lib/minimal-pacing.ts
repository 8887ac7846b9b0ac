// How fast the minimal servers read a WebSocket (bench/lib/minimal-server.ts,
// bench/lib/minimal-streams-server.ts): not faster than its answers go out. Any server must stop
// reading a client that sends without reading its answers, or it holds what that client sends
// and what it answers without bound (the overload campaign's never-reading clients,
// docs/reliability.md "The campaign"). The same two thresholds as Perch's, so both read as much
// of such a client: at most 16 messages unanswered (server.maxInflightPerConnection's default)
// and at most 64 KiB of answers not yet taken by the kernel (UNREAD_PAUSE_BYTES,
// runtime/api/ws/connection.ts). No budget across connections, no refusals, no clock.
import type { Socket } from 'node:net';
import type WebSocket from 'ws';

export const MAX_UNANSWERED = 16;
export const UNSENT_PAUSE_BYTES = 64 * 1024;

export class Pacing {
  private unanswered = 0;
  private paused = false;
  private waitingDrain = false;

  constructor(private readonly ws: WebSocket) {}

  /** A message was read that will be answered. */
  took(): void {
    this.unanswered++;
    this.check();
  }

  /** One was answered (its answer handed to ws). */
  answered(): void {
    this.unanswered--;
    this.check();
  }

  private check(): void {
    const unsent = this.ws.bufferedAmount > UNSENT_PAUSE_BYTES;
    const read = this.unanswered < MAX_UNANSWERED && !unsent;
    if (read && this.paused) {
      this.paused = false;
      this.ws.resume();
    } else if (!read && !this.paused) {
      this.paused = true;
      this.ws.pause();
    }
    if (unsent && !this.waitingDrain) {
      this.waitingDrain = true;
      (this.ws as unknown as { _socket: Socket })._socket.once('drain', () => {
        this.waitingDrain = false;
        this.check();
      });
    }
  }
}
