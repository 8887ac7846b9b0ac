// The HTTP server (OIP) and the WebSocket endpoint share one port; this module owns the
// listening socket and routes each request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Clock } from '../../base/clock.js';
import { PerchError } from '../../base/errors.js';
import type { Logger } from '../../base/log.js';
import { tokenMatches, WWW_AUTHENTICATE } from '../auth.js';
import { continueOnRead, refuseOtherExpectations } from './expect-continue.js';
import { closeWithoutReset } from './lingering-close.js';
import { sendError } from './reply.js';
import { ROUTES, type HttpContext } from './routes.js';
import { checkHostField, toOriginForm, type RequestGuard } from '../request-guard.js';

/** Who may use the API (docs/security.md). */
export interface ApiAccess {
  apiToken: string | null;
  guard: RequestGuard;
}

/** How answers are watched for clients that do not take them. */
export interface SlowReaderOptions {
  /** An answer its client has not taken after this long is cut off (server.slowReaderTimeoutMs). */
  slowReaderTimeoutMs: number;
  clock: Clock;
}

/** RFC 9110 section 9.3.2: HEAD is GET without the body (Node drops the body of a HEAD answer). */
const ROUTE_METHODS: Readonly<Record<'GET' | 'POST', readonly string[]>> = { GET: ['GET', 'HEAD'], POST: ['POST'] };

export async function handleRequest(ctx: HttpContext, access: ApiAccess, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    checkHostField(req);
    toOriginForm(req); // RFC 9112 section 3.2.2: `POST http://host/v2/...` is routed on its path
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? '';
    // Only the routes of the request's method are matched against its path (an inference POST
    // ran the patterns of seven GET routes first); the others only when none of them matches,
    // for the 405's Allow or the 404. The first route of the method that matches is the one
    // that answers, as when every route was tried in order.
    for (const route of ROUTES) {
      if (!ROUTE_METHODS[route.method].includes(method)) continue;
      const m = route.pattern.exec(path);
      if (!m) continue;
      // Health checks stay open to probes that reach the device by any name.
      if (!route.open) access.guard.checkHost(req);
      access.guard.checkHttpOrigin(req);
      if (!route.open && !route.public && !tokenMatches(req, access.apiToken, route.queryToken === true)) {
        res.setHeader('www-authenticate', WWW_AUTHENTICATE); // RFC 9110 section 11.6.1: a 401 names its scheme
        throw new PerchError('PERCH_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
      }
      const params: string[] = new Array<string>(m.length - 1);
      for (let i = 1; i < m.length; i++) {
        const p = m[i];
        params[i - 1] = p === undefined ? (undefined as unknown as string) : decodeSegment(p);
      }
      await route.handler(ctx, req, res, params);
      return;
    }
    let allowed: Set<string> | undefined; // only built for a 405
    for (const route of ROUTES) {
      if (!route.pattern.test(path)) continue;
      allowed ??= new Set();
      for (const m of ROUTE_METHODS[route.method]) allowed.add(m);
    }
    if (allowed === undefined) throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `no endpoint at ${path}`);
    res.setHeader('allow', [...allowed].join(', ')); // RFC 9110 section 15.5.6: a 405 lists what is allowed
    throw new PerchError('PERCH_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
  } catch (err) {
    sendError(res, err);
  }
}

/**
 * A path segment (model name, version) without its percent-encoding. decodeURIComponent throws
 * a URIError on a bad escape (`%ZZ`), which answered 500 PERCH_ERR_INTERNAL (found by
 * test/api/fuzz.test.ts): it is the client's mistake, a 400.
 */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `path segment '${segment}' is not valid percent-encoding`);
  }
}

export function createHttpServer(ctx: HttpContext, access: ApiAccess, slow: SlowReaderOptions, log: Logger): Server {
  // Host is checked by handleRequest (request-guard.ts checkHostField), with a coded answer.
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Shutdown: server.close() waits for every connection to end, and closeIdleConnections()
    // only ends those idle when it runs. A request still in flight then left its keep-alive
    // socket open after its answer until the client dropped it (keepAliveTimeout), so SIGTERM
    // during an inference ended in a shutdown timeout (test/cli/serve.test.ts). Once the server
    // has stopped listening, end the socket after the answer is written.
    res.once('finish', () => {
      if (!server.listening) req.socket.end();
    });
    handleRequest(ctx, access, req, res).then(
      () => cutOffSlowReader(res, slow),
      (err: unknown) => {
        log.error({ err }, 'unhandled error in HTTP handler');
        res.destroy();
      },
    );
  };
  const server = createServer({ requireHostHeader: false }, onRequest);
  continueOnRead(server, onRequest);
  refuseOtherExpectations(server);
  server.keepAliveTimeout = 65_000; // longer than common client pools' idle timeouts
  closeWithoutReset(server, slow.clock, ctx.budget);
  return server;
}

/**
 * A client that does not read its answer leaves it in the socket's buffer (client budget bytes,
 * docs/reliability.md): once the answer is written and still not flushed to the kernel after
 * slowReaderTimeoutMs, the connection is cut. Checked only when bytes are left over, so a
 * client that reads costs no timer.
 */
function cutOffSlowReader(res: ServerResponse, opts: SlowReaderOptions): void {
  if (!res.writableEnded || res.writableFinished || res.writableLength === 0) return;
  const timer = opts.clock.setTimeout(() => {
    if (!res.writableFinished) res.socket?.destroy();
  }, opts.slowReaderTimeoutMs);
  res.once('close', () => opts.clock.clearTimeout(timer));
}
