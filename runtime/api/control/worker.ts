// The control listener's thread (docs/reliability.md "A control listener"): an HTTP server with
// an event loop of its own, so /v2/health/live, /v2/health/ready, /metrics and /v1/status answer
// in milliseconds however busy the main event loop is with inference clients (the way Envoy's
// admin port and Triton's separate metrics port stand apart from the data path, and Kubernetes
// probes a dedicated port). It holds no runtime objects: it reads what the main thread publishes
// (shared-state.ts) and the last snapshot it pushed, so a stalled main loop fails liveness
// honestly once it has not beaten for server.control.maxLoopStallMs.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { PerchError } from '../../base/errors.js';
import { tokenMatches, WWW_AUTHENTICATE } from '../auth.js';
import { sendError, sendJson } from '../http/reply.js';
import { listen } from '../http/listen.js';
import { closeWithoutReset } from '../http/lingering-close.js';
import { refuseOtherExpectations } from '../http/expect-continue.js';
import { systemClock } from '../../base/clock.js';
import { checkHostField, RequestGuard, toOriginForm } from '../request-guard.js';
import { listenOnSocket } from '../unix-socket.js';
import type { ControlWorkerData, ListenMessage, SnapshotMessage } from './messages.js';
import { ControlState, monotonicMs } from './shared-state.js';

const data = workerData as ControlWorkerData & { snapshot: SnapshotMessage };
const state = new ControlState(data.state);
const guard = new RequestGuard(data.guard);
let snapshot = data.snapshot;
let snapshotAt = monotonicMs();

parentPort?.on('message', (m: SnapshotMessage | { type: 'stop' }) => {
  if (m.type === 'snapshot') {
    snapshot = m;
    snapshotAt = monotonicMs();
  } else {
    // Stop: stop listening, end every connection, then let the thread end.
    let open = servers.length;
    for (const s of servers) {
      s.close(() => {
        if (--open === 0) parentPort?.close();
      });
      s.closeAllConnections();
    }
  }
});

/** The main loop's liveness: its last beat is recent enough. */
function live(): { live: boolean; stalledMs?: number } {
  const age = state.beatAgeMs();
  return age <= data.maxLoopStallMs ? { live: true } : { live: false, stalledMs: age };
}

function answer(req: IncomingMessage, res: ServerResponse): void {
  try {
    checkHostField(req);
    toOriginForm(req); // RFC 9112 section 3.2.2, as on the main port
    const path = (req.url ?? '/').split('?')[0];
    const route = ROUTES[path as keyof typeof ROUTES];
    if (!route) throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `no endpoint at ${path} on the control listener (docs/api.md)`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new PerchError('PERCH_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
    }
    route(req, res);
  } catch (err) {
    sendError(res, err);
  }
}

/** The same checks as on the main port (docs/security.md): health open, the rest token and Host. */
function guarded(handler: (res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    guard.checkHost(req);
    if (!tokenMatches(req, data.apiToken, false)) {
      res.setHeader('www-authenticate', WWW_AUTHENTICATE);
      throw new PerchError('PERCH_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    }
    handler(res);
  };
}

/** How old the snapshot answered is: the main thread pushes one per second while its loop runs. */
function snapshotAge(res: ServerResponse): void {
  res.setHeader('perch-snapshot-age-ms', String(monotonicMs() - snapshotAt));
}

const ROUTES = {
  '/v2/health/live': (_req: IncomingMessage, res: ServerResponse) => {
    const l = live();
    sendJson(res, l.live ? 200 : 503, l);
  },
  '/v2/health/ready': (_req: IncomingMessage, res: ServerResponse) => {
    // A main loop that does not run cannot serve: not ready either.
    const l = live();
    const ready = l.live && state.ready;
    sendJson(res, ready ? 200 : 503, l.live ? { ready } : { ready, stalledMs: l.stalledMs });
  },
  '/metrics': guarded((res) => {
    snapshotAge(res);
    res.writeHead(200, { 'content-type': snapshot.metricsContentType, 'content-length': Buffer.byteLength(snapshot.metrics) });
    res.end(snapshot.metrics);
  }),
  '/v1/status': guarded((res) => {
    snapshotAge(res);
    sendJson(res, 200, snapshot.status);
  }),
};

// Host is checked by answer() (checkHostField), with a coded answer as on the main port.
const servers = [createServer({ requireHostHeader: false }, answer), createServer({ requireHostHeader: false }, answer)];
for (const s of servers) {
  s.keepAliveTimeout = 65_000; // as the main port: longer than client pools' idle timeouts
  // As the main port (lingering-close.ts): a malformed request gets a coded answer, and an
  // answer given before a body was read closes without a reset. Node's defaults here answered
  // a parse error with a bare 400 (no code) and reset connections whose body was still coming
  // (POST /v2/health/live with 4 MB: EPIPE, kept alive: no answer at all). Nothing here holds
  // client bytes, so what lingering connections discard is counted nowhere.
  closeWithoutReset(s, systemClock, { discarded: () => {} });
  // Expect: 100-continue (expect-continue.ts): nothing here reads a body, so `100 Continue` is
  // never sent (Node sent it for every such request, then the answer, and the body came for nothing).
  s.on('checkContinue', answer);
  refuseOtherExpectations(s); // any other Expect: a coded 417, as on the main port
}

async function start(): Promise<ListenMessage> {
  try {
    let port: number | null = null;
    if (data.port !== null) port = (await listen(servers[0]!, data.host, data.port)).port;
    if (data.socketPath !== null) await listenOnSocket(servers[1]!, data.socketPath, 'server.control.socketPath', data.socketMode);
    return { type: 'listening', port };
  } catch (err) {
    for (const s of servers) s.close();
    const e = err instanceof PerchError ? err : new PerchError('PERCH_ERR_LISTEN_FAILED', (err as Error).message);
    return { type: 'failed', code: e.code, message: e.message };
  }
}

parentPort?.postMessage(await start());
