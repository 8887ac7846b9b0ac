// Expect: 100-continue (RFC 9110 section 10.1.1): a client that sends it waits for `100 Continue`
// before it sends its body, so a request refused from its headers costs it no upload. Node's
// http.Server sent `100 Continue` itself for every such request, before Perch had looked at it:
// a request refused 401, 404, 413 or 429 from its headers, or from a foreign Host, then had its
// body sent all the same, for nothing (docs/api.md, "HTTP (Open Inference Protocol v2)").
// Handling the server's 'checkContinue' event turns that off; `100 Continue` goes out only when a
// handler starts to read the body (body.ts), after every check made from the headers. A request
// answered without it
// closes its connection (Node does so: the client may or may not have sent the body), lingering
// as every refusal from the headers does (lingering-close.ts).
// Any other expectation (RFC 9110 allows only 100-continue) Node answered itself with a bare 417,
// no body and no code; refuseOtherExpectations gives it a coded one.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { PerchError } from '../../base/errors.js';
import { sendError } from './reply.js';

/** Requests that asked for `100 Continue` and have not had it yet, with their responses. */
const waiting = new WeakMap<IncomingMessage, ServerResponse>();

/** Requests with Expect: 100-continue go to `onRequest` as any other, without `100 Continue` yet. */
export function continueOnRead(server: Server, onRequest: (req: IncomingMessage, res: ServerResponse) => void): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    waiting.set(req, res);
    onRequest(req, res);
  });
}

/** Called where a body is about to be read: sends `100 Continue` if the client waits for it. */
export function continueBody(req: IncomingMessage): void {
  const res = waiting.get(req);
  if (res === undefined) return;
  waiting.delete(req);
  if (!res.headersSent && !res.writableEnded) res.writeContinue();
}

/**
 * An `Expect` other than 100-continue: 417 PERCH_ERR_EXPECTATION_FAILED from the head, as Node
 * answered it but coded (docs/errors.md), on the main port and the control listener. The
 * connection closes: what such a client does with its body (sent, or held back) is not known,
 * so the next bytes cannot be trusted to start a request; it lingers (lingering-close.ts).
 */
export function refuseOtherExpectations(server: Server): void {
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('connection', 'close');
    sendError(res, new PerchError('PERCH_ERR_EXPECTATION_FAILED', 'Expect: only 100-continue is met (RFC 9110 section 10.1.1)'));
  });
}
