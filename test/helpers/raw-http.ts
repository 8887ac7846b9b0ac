// An HTTP/1.1 connection written and read by hand: requests exactly as a test spells them
// (absolute-form targets, Expect: 100-continue with the body held back), and every answer read
// in order, interim ones (100 Continue) included, which Node's client hides or handles itself.
import { connect, type Socket } from 'node:net';

export interface RawHttpAnswer {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  text: string;
  json: Record<string, unknown> | undefined;
}

export class RawHttp {
  private buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  /** Resolves when the server has ended or closed the connection. */
  readonly closed: Promise<void>;
  private ended = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.ended = true;
        this.wake?.();
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
    socket.on('error', () => undefined); // a reset shows as the connection closed
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawHttp> {
    return new Promise((resolve, reject) => {
      const s = connect(port, host, () => resolve(new RawHttp(s)));
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next answer on the connection (an interim one too); rejects if it closes first. */
  async next(): Promise<RawHttpAnswer> {
    for (;;) {
      const answer = this.take();
      if (answer) return answer;
      if (this.ended) throw new Error(`the connection closed before a whole answer (had ${JSON.stringify(this.buffer.toString('latin1'))})`);
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private take(): RawHttpAnswer | null {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number((lines[0] ?? '').split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = status < 200 ? 0 : Number(headers['content-length'] ?? 0);
    if (this.buffer.length < end + 4 + length) return null;
    const text = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buffer = this.buffer.subarray(end + 4 + length);
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    return { status, headers, text, json };
  }
}

/** A request head; `headers` in the order given, then the empty line. */
export function head(method: string, target: string, headers: Record<string, string | number>): string {
  return `${method} ${target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** What a server said on a connection written whole, and any socket error (a reset) seen. */
export interface Outcome {
  text: string;
  error: string | null;
}

/**
 * Writes `head` + `body`, half-closes, reads until the server closes; any socket error is kept
 * (a client that writes its whole request before reading, as most do: a server that closes with
 * the body unread makes the kernel reset the connection).
 */
export function exchange(port: number, head: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let error: string | null = null;
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ text, error }));
    s.on('connect', () => {
      s.write(head);
      s.end(body);
    });
  });
}
