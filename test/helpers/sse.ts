// A Server-Sent Events reader over a real HTTP connection (node:http): parses the stream as the
// HTML spec says (fields, blank line ends an event, ':' starts a comment) and keeps what came.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

export class SseReader {
  readonly events: SseEvent[] = [];
  comments = 0;
  status = 0;
  headers: IncomingMessage['headers'] = {};
  body = '';
  ended = false;
  private buf = '';
  private cur: { id: string | null; event: string; data: string[] } = { id: null, event: 'message', data: [] };

  private constructor(private readonly req: ClientRequest) {}

  /** Connects and resolves once the answer's headers are in. */
  static open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
      const reader = new SseReader(req);
      req.once('error', (err) => (reader.status === 0 ? reject(err) : undefined));
      req.once('response', (res) => {
        reader.status = res.statusCode ?? 0;
        reader.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => reader.feed(chunk));
        res.once('end', () => (reader.ended = true));
        res.once('close', () => (reader.ended = true));
        res.on('error', () => undefined);
        resolve(reader);
      });
      req.end();
    });
  }

  /** The `events` topic as parsed objects, in arrival order. */
  outboxEvents(): Array<{ seq: number; type: string; payload: unknown; id: string | null }> {
    return this.events.filter((e) => e.event === 'events').map((e) => ({ ...(JSON.parse(e.data) as { seq: number; type: string; payload: unknown }), id: e.id }));
  }

  lastId(): string | null {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i]?.id != null) return this.events[i]?.id ?? null;
    return null;
  }

  close(): void {
    this.req.destroy();
  }

  private feed(chunk: string): void {
    if (this.status !== 200) {
      this.body += chunk;
      return;
    }
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.cur.data.length) this.events.push({ id: this.cur.id, event: this.cur.event, data: this.cur.data.join('\n') });
      this.cur = { id: null, event: 'message', data: [] };
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') this.cur.id = value;
    else if (field === 'event') this.cur.event = value;
    else if (field === 'data') this.cur.data.push(value);
  }
}
