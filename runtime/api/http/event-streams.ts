// GET /v1/events (docs/api.md "Server-Sent Events"): checks the query and Last-Event-ID, opens
// an EventStream, and keeps the open ones so that shutdown can end them (a stream never ends by
// itself, and server.close() waits for every connection).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PerchError } from '../../base/errors.js';
import { TOPICS, type Topic } from '../topics.js';
import { EventStream, type EventStreamDeps } from './event-stream.js';

export class EventStreams {
  private readonly open = new Set<EventStream>();

  constructor(private readonly deps: EventStreamDeps) {}

  get count(): number {
    return this.open.size;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const topics = parseTopics(query.get('topics'));
    // EventSource sends Last-Event-ID itself when it reconnects; a page that starts again can
    // only pass what it saw as a query parameter.
    const lastEventId = parseLastId(req.headers['last-event-id'] ?? query.get('lastEventId'));
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const stream = new EventStream(res, this.deps, topics, lastEventId);
    if (stream.isClosed) return;
    this.open.add(stream);
    res.once('close', () => this.open.delete(stream));
  }

  /** Ends every stream: at shutdown, before the server waits for its connections. */
  close(): void {
    for (const s of this.open) s.end();
    this.open.clear();
  }
}

function parseTopics(raw: string | null): Topic[] {
  if (raw === null || raw === '') return [...TOPICS];
  const out: Topic[] = [];
  for (const t of raw.split(',')) {
    const name = t.trim();
    if (!(TOPICS as readonly string[]).includes(name)) {
      throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `unknown topic '${name.slice(0, 64)}' (topics: ${TOPICS.join(', ')})`);
    }
    if (!out.includes(name as Topic)) out.push(name as Topic);
  }
  return out;
}

function parseLastId(raw: string | string[] | null | undefined): number | null {
  if (raw === null || raw === undefined) return null;
  const text = Array.isArray(raw) ? raw[0] ?? '' : raw;
  if (text.trim() === '') return null;
  if (!/^\d{1,15}$/.test(text.trim())) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `Last-Event-ID '${text.slice(0, 64)}' is not an event seq`);
  return Number(text.trim());
}
