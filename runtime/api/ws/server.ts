// The WebSocket API at /v1/ws (docs/protocol.md section 4): infer, emit, subscribe, status.
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock } from '../../base/clock.js';
import { PerchError, toPerchError } from '../../base/errors.js';
import { ClientScope, type ScopeOptions } from '../../inference/client-scope.js';
import type { InferAnswer } from '../../inference/infer-call.js';
import type { InferRequest, InferResult, InferService } from '../../inference/infer-service.js';
import type { Logger } from '../../base/log.js';
import { RequestTrace } from '../../base/request-trace.js';
import type { Tracing } from '../../base/tracing.js';
import { tokenMatches, WWW_AUTHENTICATE } from '../auth.js';
import type { ClientBudget } from '../client-budget.js';
import type { Intake } from '../intake.js';
import { toOriginForm, type RequestGuard } from '../request-guard.js';
import { decodeInputs, requestedOutputs, validate } from '../decode-request.js';
import { encodeResultJson } from '../encode-response.js';
import { validateInferMessage } from '../infer-shape.js';
import type { Answer, Reply } from './answer.js';
import { Connection, type ConnectionStats } from './connection.js';
import {
  emitMessageSchema, OPS, statusMessageSchema, subscribeMessageSchema,
  type EmitMessage, type Topic,
} from './messages.js';

export const WS_PATH = '/v1/ws';
/** An inference's answer body when its result goes as text (Reply.resultJson): the same object for every answer. */
const OK: Readonly<Record<string, unknown>> = Object.freeze({ ok: true });

export interface WsDeps {
  service: InferService;
  /** OpenTelemetry (docs/observability.md); absent or off: requests are not traced. */
  tracing?: Tracing | undefined;
  log: Logger;
  apiToken: string | null;
  /** Host and Origin checks (docs/security.md). */
  guard: RequestGuard;
  maxFrameBytes: number;
  maxInflightPerConnection: number;
  maxBufferedBytesPerConnection: number;
  slowReaderTimeoutMs: number;
  /** The process-wide budget of bytes held for clients. */
  budget: ClientBudget;
  /** Holds back inference input while the event loop lags. */
  intake: Intake;
  /** Sequence limits of each connection's scope. */
  scope: ScopeOptions;
  clock: Clock;
  /** The `status` answer (models, queues, outbox, connectivity). */
  status: () => Record<string, unknown>;
  /** Attaches a listener for a topic; returns the function that detaches it. */
  subscribe: (topic: Topic, push: (data: unknown) => void) => () => void;
  /** Makes an event durable and answers its id and seq; null while no store is wired. */
  /** `traceparent`: the message's, if any (docs/observability.md). */
  emit: ((type: string, payload: unknown, traceparent?: string) => Promise<{ eventId: string; seq: number }>) | null;
}

export class WsApi {
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<Connection>();
  private accepting = true;

  constructor(private readonly deps: WsDeps) {
    // ws closes a connection whose frame passes maxPayload with 1009 (message too big); every
    // other connection goes on.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: deps.maxFrameBytes, perMessageDeflate: false });
  }

  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Read-only flow-control state of every open connection (tests, diagnostics). */
  connectionStats(): ConnectionStats[] {
    return [...this.connections].map((c) => c.stats);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      toOriginForm(req); // RFC 9112 section 3.2.2: an absolute-form target, its authority checked as Host
      const path = (req.url ?? '/').split('?')[0];
      if (path !== WS_PATH) throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `no WebSocket endpoint at ${path}`);
      if (!this.accepting) throw new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping');
      this.deps.guard.checkHost(req);
      this.deps.guard.checkOrigin(req);
      if (!tokenMatches(req, this.deps.apiToken, true)) throw new PerchError('PERCH_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    } catch (err) {
      return refuseUpgrade(socket, toPerchError(err));
    }
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const d = this.deps;
      const conn = new Connection(
        ws,
        socket,
        {
          limits: { maxInflight: d.maxInflightPerConnection, maxBufferedBytes: d.maxBufferedBytesPerConnection, slowReaderTimeoutMs: d.slowReaderTimeoutMs },
          budget: d.budget,
          intake: d.intake,
          scope: new ClientScope(d.scope),
          clock: d.clock,
          log: d.log,
        },
        (c, message, binary, isBinary, answer) => this.handle(c, message, binary, isBinary, answer),
      );
      this.connections.add(conn);
      ws.on('close', () => this.connections.delete(conn));
      socket.once('close', () => this.connections.delete(conn));
    });
  }

  /**
   * Not async itself: an infer message's tensors are decoded here, and only they go on to wait
   * for the answer. An async function keeps its parameters live across its awaits, and the
   * frame's binary part stayed held beside its decoded copy (a misaligned tensor is copied) until
   * the answer: twice what the budget charged (docs/reliability.md). The answer is given from the
   * infer service's callback (InferReply), not through promises.
   */
  private handle(conn: Connection, message: unknown, binary: Uint8Array, isBinary: boolean, answer: Answer): void {
    const op = typeof message === 'object' && message !== null ? (message as { op?: unknown }).op : undefined;
    if (op !== 'infer') {
      this.handleOther(conn, message, op).then((reply) => answer.reply(reply), (err: unknown) => answer.fail(err));
      return;
    }
    const tracing = this.deps.tracing;
    // The message's `traceparent` field, if any, is the parent (docs/observability.md).
    const trace = tracing?.enabled ? new RequestTrace(tracing, 'ws', (message as { traceparent?: string }).traceparent) : undefined;
    let request: InferRequest;
    try {
      const m = validateInferMessage(message);
      request = {
        model: m.model,
        version: m.version,
        inputs: decodeInputs(m.inputs, binary),
        outputs: requestedOutputs({ inputs: m.inputs, outputs: m.outputs }),
        parameters: m.parameters,
        trace,
      };
    } catch (err) {
      if (trace) trace.end(toPerchError(err).code, (err as Error).message);
      answer.fail(err);
      return;
    }
    this.deps.service.inferTo(request, conn.scope, new InferReply(answer, isBinary, trace));
  }

  private async handleOther(conn: Connection, message: unknown, op: unknown): Promise<Reply> {
    switch (op) {
      case 'emit': {
        const m: EmitMessage = validate(emitMessageSchema, message, 'emit message');
        if (!this.deps.emit) throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', 'no event store is open');
        const tp = (message as { traceparent?: unknown }).traceparent;
        const { eventId, seq } = await this.deps.emit(m.type, m.payload, typeof tp === 'string' ? tp : undefined);
        return { body: { ok: true, eventId, seq } };
      }
      case 'subscribe': {
        const m = validate(subscribeMessageSchema, message, 'subscribe message');
        for (const topic of m.topics) conn.subscribe(topic, (push) => this.deps.subscribe(topic, push));
        return { body: { ok: true } };
      }
      case 'status':
        validate(statusMessageSchema, message, 'status message');
        return { body: { ok: true, status: this.deps.status() } };
      default:
        if (typeof op === 'string') throw new PerchError('PERCH_ERR_UNKNOWN_OP', `unknown op '${op}' (ops: ${OPS.join(', ')})`);
        throw new PerchError('PERCH_ERR_INVALID_MESSAGE', 'a message needs an "op" string');
    }
  }

  /** Stops new connections, lets every connection's in-flight work answer, then closes them. */
  async close(): Promise<void> {
    this.accepting = false;
    await Promise.all([...this.connections].map((c) => c.settled()));
    for (const c of this.connections) c.socket.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** An inference's result encoded as the WebSocket answer (its trace ended once it is), or its error. */
class InferReply implements InferAnswer {
  constructor(
    private readonly answer: Answer,
    /** A binary request gets binary outputs unless it asked otherwise per output. */
    private readonly isBinary: boolean,
    private readonly trace: RequestTrace | undefined,
  ) {}

  resolve(result: InferResult): void {
    let reply: Reply;
    try {
      const { json, chunks } = encodeResultJson(result, this.isBinary);
      this.trace?.end();
      reply = { body: OK, resultJson: json, chunks };
    } catch (err) {
      this.reject(err);
      return;
    }
    this.answer.reply(reply);
  }

  reject(err: unknown): void {
    if (this.trace) this.trace.end(toPerchError(err).code, (err as Error).message);
    this.answer.fail(err);
  }
}

/** The refusal as an HTTP answer with the same JSON error body as the HTTP API. */
function refuseUpgrade(socket: Duplex, err: PerchError): void {
  const body = JSON.stringify({ error: err.message, code: err.code });
  const headers = [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(err.status === 401 ? [`WWW-Authenticate: ${WWW_AUTHENTICATE}`] : []),
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
