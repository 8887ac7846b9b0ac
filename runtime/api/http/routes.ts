// HTTP endpoints: Open Inference Protocol v2 (docs/protocol.md section 3), Triton's model repository
// extension (load / unload / index, for operators), and Prometheus metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { PerchError } from '../../base/errors.js';
import type { InferRequest, InferService } from '../../inference/infer-service.js';
import { parseVersion } from '../../inference/infer-service.js';
import type { ModelInstance } from '../../batching/model-instance.js';
import type { ModelRegistry } from '../../models/registry.js';
import type { ResolvedModelConfig } from '../../models/resolve-config.js';
import { RUNTIME_VERSION } from '../../base/version.js';
import { decodeInputs, requestedOutputs } from '../decode-request.js';
import { encodeResult } from '../encode-response.js';
import type { ClientScope } from '../../inference/client-scope.js';
import { takeJsonCost, type ClientBudget, type Hold } from '../client-budget.js';
import type { Intake } from '../intake.js';
import type { JsonParseThread } from '../json-thread/parse-thread.js';
import { decodeInferJson, type DecodedBody } from '../json-thread/decode-body.js';
import { declaredLength, readBody, readSplitBody } from './body.js';
import type { EventStreams } from './event-streams.js';
import type { ConsoleFiles } from './console-files.js';
import { parkableOf } from './park.js';
import { isRawBody, mediaType, rawBodyInput } from './raw-body.js';
import { sendJson, sendResult } from './reply.js';
import { modelStatistics } from '../statistics.js';
import type { Tracing } from '../../base/tracing.js';
import { RequestTrace } from '../../base/request-trace.js';

export interface HttpContext {
  registry: ModelRegistry<ModelInstance>;
  service: InferService;
  metrics: Registry;
  maxRequestBytes: number;
  /** A body from which nothing arrives this long is refused (server.slowReaderTimeoutMs; body.ts). */
  bodyStallMs: number;
  /** The process-wide budget of bytes held for clients (client-budget.ts). */
  budget: ClientBudget;
  /** Holds back inference input while the event loop lags (intake.ts). */
  intake: Intake;
  /** Parses large JSON bodies off the main thread (json-thread/parse-thread.ts). */
  jsonThread: JsonParseThread;
  /** The scope of the connection a request came on (one per keep-alive socket). */
  scopeOf: (req: IncomingMessage) => ClientScope;
  /** GET /v1/status: the WebSocket `status` answer and the device, cloud and model changes (docs/api.md). */
  status: () => Record<string, unknown>;
  /** Server-Sent Events at /v1/events (event-streams.ts). */
  eventStreams: EventStreams;
  /** The web console's files at / and /console/ (console-files.ts). */
  consoleFiles: ConsoleFiles;
  /** OpenTelemetry (docs/observability.md); absent or off: requests are not traced. */
  tracing?: Tracing | undefined;
}

type Handler = (ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void> | void;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: Handler;
  /** Health checks answer without the API token (container HEALTHCHECK, load balancers). */
  open?: boolean;
  /** The token may also come as ?token= (EventSource cannot set headers; docs/security.md). */
  queryToken?: boolean;
  /** Static console files: no token (they hold no data; the page asks for it), Host still checked. */
  public?: boolean;
}

const NAME = '([^/]+)';
const VERSION = '(?:/versions/([^/]+))?';

export const EXTENSIONS = ['binary_tensor_data', 'model_repository', 'parameters', 'metrics', 'statistics'];

export const ROUTES: Route[] = [
  { method: 'GET', pattern: /^\/v2\/health\/live$/, open: true, handler: (_c, _q, res) => sendJson(res, 200, { live: true }) },
  {
    method: 'GET', pattern: /^\/v2\/health\/ready$/, open: true,
    handler: (c, _q, res) => {
      const ready = c.registry.isReady();
      sendJson(res, ready ? 200 : 503, { ready });
    },
  },
  { method: 'GET', pattern: /^\/v2\/?$/, handler: (_c, _q, res) => sendJson(res, 200, { name: 'perch', version: RUNTIME_VERSION, extensions: EXTENSIONS }) },
  // Before the model routes: `/v2/models/stats` is every model's statistics, as in Triton.
  { method: 'GET', pattern: /^\/v2\/models\/stats$/, handler: (c, _q, res) => sendJson(res, 200, modelStatistics(c.registry)) },
  { method: 'GET', pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/stats$`), handler: (c, _q, res, [name, version]) => sendJson(res, 200, modelStatistics(c.registry, name, version)) },
  { method: 'GET', pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/ready$`), handler: modelReady },
  { method: 'GET', pattern: new RegExp(`^/v2/models/${NAME}${VERSION}$`), handler: modelMetadata },
  { method: 'POST', pattern: new RegExp(`^/v2/models/${NAME}${VERSION}/infer$`), handler: infer },
  { method: 'POST', pattern: /^\/v2\/repository\/index$/, handler: repositoryIndex },
  { method: 'POST', pattern: new RegExp(`^/v2/repository/models/${NAME}/load$`), handler: loadModel },
  { method: 'POST', pattern: new RegExp(`^/v2/repository/models/${NAME}/unload$`), handler: unloadModel },
  { method: 'GET', pattern: /^\/$/, public: true, handler: (c, req, res) => c.consoleFiles.serve(req, res, 'index.html') },
  { method: 'GET', pattern: /^\/console\/([^/]+)$/, public: true, handler: (c, req, res, [name]) => c.consoleFiles.serve(req, res, name as string) },
  { method: 'GET', pattern: /^\/v1\/status$/, handler: (c, _q, res) => sendJson(res, 200, c.status()) },
  { method: 'GET', pattern: /^\/v1\/events$/, queryToken: true, handler: (c, req, res) => c.eventStreams.handle(req, res) },
  {
    method: 'GET', pattern: /^\/metrics$/,
    handler: async (c, _q, res) => {
      const text = await c.metrics.metrics();
      // The length also in answers to HEAD, which carry no body.
      res.writeHead(200, { 'content-type': c.metrics.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
  },
];

async function modelReady(c: HttpContext, _q: IncomingMessage, res: ServerResponse, [name, version]: string[]): Promise<void> {
  await c.registry.resolveLoaded(name as string, parseVersion(version)); // throws 404 / 503
  sendJson(res, 200, { name, ready: true });
}

async function modelMetadata(c: HttpContext, _q: IncomingMessage, res: ServerResponse, [name, version]: string[]): Promise<void> {
  const inst = await c.registry.resolveLoaded(name as string, parseVersion(version));
  const spec = (t: { name: string; datatype: string; dims: number[] }) => ({ name: t.name, datatype: t.datatype, shape: t.dims });
  sendJson(res, 200, {
    name: inst.name,
    versions: c.registry.statusOf(inst.name).served.map(String),
    platform: 'onnxruntime_onnx',
    inputs: inst.config.inputs.map(spec),
    outputs: inst.config.outputs.map(spec),
    // Perch extra: how requests are batched.
    max_batch_size: inst.config.maxBatchSize,
  });
}

/** Refusals for load: the connection that got one is parked (intake.ts). */
const LOAD_REFUSALS: ReadonlySet<string> = new Set(['PERCH_ERR_QUEUE_FULL', 'PERCH_ERR_OVERLOADED']);

function infer(c: HttpContext, req: IncomingMessage, res: ServerResponse, params: string[]): Promise<void> {
  const conn = parkableOf(req.socket);
  c.intake.pace(conn);
  // Shed early and cheaply (docs/reliability.md): a request that cannot be queued is refused
  // from its headers, before its body is read or parsed, and its connection is parked (when
  // the budget is spent, at once, while Node's parser is still on the bytes that brought it, so
  // the requests pipelined behind it wait too). Under a flood, reading and parsing bodies only
  // to refuse them is what kept health checks waiting.
  if (c.budget.spent) {
    c.intake.refused(conn);
    return Promise.reject(c.budget.refusal('request', 0));
  }
  // W3C Trace Context: the caller's traceparent header is the parent (docs/observability.md).
  const trace = c.tracing?.enabled ? new RequestTrace(c.tracing, 'http', typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined) : undefined;
  return inferOnce(c, req, res, params, trace).then(() => trace?.end(), (err: unknown) => {
    if (trace) trace.end(err instanceof PerchError ? err.code : 'PERCH_ERR_INTERNAL', (err as Error).message);
    if (err instanceof PerchError && LOAD_REFUSALS.has(err.code)) c.intake.refused(conn);
    throw err;
  });
}

async function inferOnce(c: HttpContext, req: IncomingMessage, res: ServerResponse, [name, version]: string[], trace: RequestTrace | undefined): Promise<void> {
  // A loaded model is resolved without an await (as the infer service does): a promise and a
  // microtask turn fewer, and the body reader is set up in the turn of the request's headers.
  // The body's bytes flow at the same point either way (Node's stream keeps what the parser
  // pushes until the reader's resume tick); docs/benchmarks.md, "HTTP binary against the minimal
  // server".
  const v = parseVersion(version);
  const target = c.registry.loadsFirst(name as string) ? await c.registry.resolveLoaded(name as string, v) : c.registry.resolve(name as string, v);
  const full = target.batcher.fullError();
  if (full) throw full;
  const type = mediaType(req.headers['content-type']);
  const file = isRawBody(type);
  const hold = c.budget.hold();
  // Given back when the answer is done, or when the connection closes: a pipelined request whose
  // connection closes before its turn never gets a 'close' on its response (Node emits that only
  // for the response on the socket), which left the budget 63 MB short after the infer flood of
  // docs/reliability.md. The connection's scope closes for every request it carried.
  const scope = c.scopeOf(req);
  const forget = scope.onClose(() => hold.release());
  res.once('close', () => {
    forget();
    hold.release();
  });
  // JSON whose length is declared is charged its parse from its headers, before a byte is read:
  // 413 if it could never fit, 429 if not now (docs/reliability.md "Large JSON bodies"). Charged
  // once read, a 12 MB body that fitted the budget as bytes was read whole and then refused,
  // and the bodies read only to be refused were most of the JSON attack's peak.
  const declaredJson = file || declaredLength(req) > c.maxRequestBytes ? Number.NaN : declaredJsonLength(req); // over the limit: readBody's 413
  const jsonCharged = Number.isFinite(declaredJson);
  if (jsonCharged) takeJsonCost(c.budget, hold, declaredJson);
  // Read and decoded in a function of its own, so that no frame of this one holds the body while
  // the request waits in the queue: only its tensors stay (a view of the body, or a copy of their
  // own). Locals of an async function stay live across its awaits: the body and its JSON and
  // binary slices were held beside the tensors until the answer (docs/reliability.md).
  const request = await readInferRequest(c, req, hold, target.config, type, file, name as string, version, trace, jsonCharged);
  const result = await c.service.infer(request, scope);
  sendResult(res, encodeResult(result, false), hold);
}

async function readInferRequest(
  c: HttpContext, req: IncomingMessage, hold: Hold, model: ResolvedModelConfig, type: string, file: boolean,
  name: string, version: string | undefined, trace: RequestTrace | undefined, jsonCharged: boolean,
): Promise<InferRequest> {
  // OIP binary extension: the JSON header length comes in a header; the tensor bytes follow it.
  const headerLength = req.headers['inference-header-content-length'];
  if (!file && headerLength !== undefined) {
    const n = lengthOf(headerLength);
    // Read into a buffer for the header and one for the tensors (body.ts readSplitBody).
    if (Number.isInteger(n) && n >= 0 && n <= declaredLength(req)) {
      const { json, binary } = await readSplitBody(req, c.maxRequestBytes, c.budget, hold, n, c.bodyStallMs);
      return decodeOip(c, hold, json, binary, name, version, trace, jsonCharged);
    }
  }
  const raw = await readBody(req, c.maxRequestBytes, c.budget, hold, c.bodyStallMs);
  if (file) return { model: name, version, inputs: [rawBodyInput(model, raw, type)], trace };
  let json: Buffer = raw;
  let binary: Uint8Array = new Uint8Array(0);
  if (headerLength !== undefined) {
    const n = lengthOf(headerLength);
    if (!Number.isInteger(n) || n < 0 || n > raw.length) {
      throw new PerchError('PERCH_ERR_BINARY_SIZE', `Inference-Header-Content-Length ${headerLength} does not fit a body of ${raw.length} bytes`);
    }
    json = raw.subarray(0, n);
    binary = raw.subarray(n);
  }
  return decodeOip(c, hold, json, binary, name, version, trace, jsonCharged);
}

/**
 * The OIP JSON (or binary extension header) and the tensor bytes after it, as a request: at once
 * when the JSON is decoded on this thread (an HTTP binary request's header), without a promise
 * and the microtask turns of awaiting one; a large body's once the JSON parse thread is done.
 */
function decodeOip(
  c: HttpContext, hold: Hold, json: Buffer, binary: Uint8Array, name: string, version: string | undefined, trace: RequestTrace | undefined,
  jsonCharged: boolean,
): InferRequest | Promise<InferRequest> {
  // A chunked body's length was not known at its headers: charged now that it is read.
  if (!jsonCharged) takeJsonCost(c.budget, hold, json.length);
  if (c.jsonThread.decodesHere(json)) return oipRequest(decodeInferJson(json), binary, name, version, trace);
  // Large bodies are parsed on the JSON parse thread, not in the loop that answers health checks;
  // one still waiting for it when its client goes (the hold released) is dropped, not parsed.
  return c.jsonThread.decode(json, hold).then((d) => oipRequest(d, binary, name, version, trace));
}

function oipRequest({ body, decoded }: DecodedBody, binary: Uint8Array, name: string, version: string | undefined, trace: RequestTrace | undefined): InferRequest {
  return {
    model: name,
    version,
    id: body.id,
    inputs: decodeInputs(body.inputs, binary, decoded),
    outputs: requestedOutputs(body),
    parameters: body.parameters,
    trace,
  };
}

/**
 * The length of the JSON text a request declares in its headers: the OIP binary extension's
 * header length when it fits the body, else the whole Content-Length; NaN when nothing is
 * declared (chunked) or what is declared is not a length (the read refuses it later).
 */
function declaredJsonLength(req: IncomingMessage): number {
  const body = declaredLength(req);
  if (!(Number.isInteger(body) && body >= 0)) return Number.NaN;
  const header = req.headers['inference-header-content-length'];
  if (header === undefined) return body;
  const n = lengthOf(header);
  return Number.isInteger(n) && n >= 0 && n <= body ? n : Number.NaN;
}

/**
 * Inference-Header-Content-Length as a number of bytes: decimal digits only, else NaN (refused
 * 400 PERCH_ERR_BINARY_SIZE). Number() took '0x10', '1e2', '0b1' and '' as 16, 100, 1 and 0,
 * so a header that was not a length split the body somewhere all the same.
 */
function lengthOf(header: string | string[]): number {
  return typeof header === 'string' && /^[0-9]{1,15}$/.test(header) ? Number(header) : Number.NaN;
}

function repositoryIndex(c: HttpContext, _q: IncomingMessage, res: ServerResponse): void {
  const rows = [];
  for (const name of new Set([...c.registry.repositoryNames(), ...c.registry.status().map((s) => s.name)])) {
    if (!c.registry.has(name)) {
      rows.push({ name, state: 'UNAVAILABLE', reason: 'not loaded' });
      continue;
    }
    const s = c.registry.statusOf(name);
    // Perch extra beside Triton's fields: the PERCH_ERR_* code of a failure, so an operator (or a
    // script) can tell a corrupt file from a bad model.json without parsing the message.
    if (s.error) rows.push({ name, state: 'UNAVAILABLE', reason: s.error.message, code: s.error.code });
    for (const v of s.versions) {
      rows.push({
        name, version: String(v.version), state: v.state === 'ready' ? 'READY' : 'UNAVAILABLE', reason: v.error?.message ?? '',
        ...(v.error ? { code: v.error.code } : {}),
      });
    }
  }
  sendJson(res, 200, rows);
}

async function loadModel(c: HttpContext, _q: IncomingMessage, res: ServerResponse, [name]: string[]): Promise<void> {
  if (!c.registry.repositoryNames().includes(name as string)) throw new PerchError('PERCH_ERR_MODEL_NOT_FOUND', `no folder '${name}' in the model repository`);
  const status = await c.registry.load(name as string);
  const failure = status.error ?? status.versions.find((v) => v.state === 'failed')?.error;
  if (failure) sendJson(res, 400, { error: failure.message, code: failure.code, status });
  else sendJson(res, 200, status);
}

async function unloadModel(c: HttpContext, _q: IncomingMessage, res: ServerResponse, [name]: string[]): Promise<void> {
  await c.registry.unload(name as string);
  sendJson(res, 200, {});
}
