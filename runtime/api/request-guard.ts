// Browser-borne requests against the device API (docs/security.md): a web page on any site can
// make a browser send a "simple" POST (text/plain, no preflight) or open a WebSocket to the
// device, and DNS rebinding can point a site's own name at the device so the browser treats it
// as same-origin. Two checks close both: `Host` must name the device (not a foreign site), and a
// request that changes something (or a WebSocket upgrade) must come from the same origin or a
// configured one when it carries `Origin` at all. Non-browser clients send no `Origin`.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { PerchError } from '../base/errors.js';
import type { PerchConfig } from '../config/schema.js';

export interface RequestGuardOptions {
  /** The address the server listens on (`server.host`): a name there is the device's own. */
  bindHost: string;
  /** Extra names the device is reached by (`server.allowedHosts`), without port. */
  allowedHosts: readonly string[];
  /** Origins of web apps that may use the API (`server.allowedOrigins`), `scheme://host[:port]`. */
  allowedOrigins: readonly string[];
}

/** The guard config.server asks for (the main listeners and the control listener share it). */
export function guardOptionsFor(server: Pick<PerchConfig['server'], 'host' | 'allowedHosts' | 'allowedOrigins'>): RequestGuardOptions {
  return { bindHost: server.host, allowedHosts: server.allowedHosts, allowedOrigins: server.allowedOrigins };
}

/** Methods that only read: browsers cannot read the answer cross-origin (Perch sends no CORS headers). */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

export class RequestGuard {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;
  /**
   * The last `Host` value found allowed. The verdict depends on the value alone (the names are
   * fixed for the guard's life), and a client sends the same value with every request: it was
   * parsed and checked again each time (a regular expression, isIP; docs/benchmarks.md, issue 20).
   */
  private allowedHost: string | undefined;

  constructor(opts: RequestGuardOptions) {
    this.hosts = new Set([...opts.allowedHosts, opts.bindHost].map(normalizeName));
    this.origins = new Set(opts.allowedOrigins.map((o) => new URL(o).origin));
  }

  /**
   * DNS rebinding: a page at http://evil.example:8080 whose name now resolves to the device
   * sends `Host: evil.example:8080`. Allowed: IP literals (no DNS involved, so the page's origin
   * is the device's own address), `localhost` and `*.localhost` (browsers resolve them to
   * loopback themselves, RFC 6761), the bind address and configured names. No Host at all
   * (HTTP/1.0) is not a browser.
   */
  checkHost(req: IncomingMessage): void {
    const host = req.headers.host;
    if (host === undefined || host === this.allowedHost) return;
    const name = hostName(host);
    if (name === null) throw new PerchError('PERCH_ERR_HOST_FORBIDDEN', `Host '${host}' is not a host name`);
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || this.hosts.has(name)) {
      this.allowedHost = host;
      return;
    }
    throw new PerchError('PERCH_ERR_HOST_FORBIDDEN', `Host '${name}' is not a name of this device (server.allowedHosts)`);
  }

  /** HTTP: a cross-origin request that changes something is refused; reads are let through. */
  checkHttpOrigin(req: IncomingMessage): void {
    if (!SAFE_METHODS.has(req.method ?? '')) this.checkOrigin(req);
  }

  /** WebSocket upgrades (GETs) are always checked: a socket a foreign page opened can do anything. */
  checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      // `Origin: null` (sandboxed frames, file:// pages) lands here too.
      throw new PerchError('PERCH_ERR_ORIGIN_FORBIDDEN', `Origin '${origin}' may not use this API (server.allowedOrigins)`);
    }
    if (this.origins.has(url.origin) || sameOrigin(url, req.headers.host)) return;
    throw new PerchError('PERCH_ERR_ORIGIN_FORBIDDEN', `Origin '${url.origin}' may not use this API (server.allowedOrigins)`);
  }
}

/**
 * RFC 9112 section 3.2: a request carries one Host field, and an HTTP/1.1 request must carry it;
 * anything else is a 400. Node refused a missing Host itself with a bare 400 (no body, no code;
 * its requireHostHeader, turned off where Perch serves HTTP so this answers instead) and took the
 * first of two Host fields, where a proxy in front may route by the last.
 */
export function checkHostField(req: IncomingMessage): void {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `the request has ${hosts} Host header fields; one is allowed (RFC 9112 section 3.2)`);
  if (hosts === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
    throw new PerchError('PERCH_ERR_INVALID_MESSAGE', 'an HTTP/1.1 request needs a Host header field (RFC 9112 section 3.2)');
  }
}

/**
 * RFC 9112 section 3.2.2: a server MUST accept a request target in absolute form
 * (`POST http://device:8000/v2/models/x/infer`, as sent to a proxy), and then use the target's
 * authority in place of the Host field, which it MUST ignore. Such a request was answered 404 (its
 * target matched no route). The target is made its origin form (path and query) and its authority
 * becomes `Host`, so that routing and every check of Host (checkHost, the same-origin test) see
 * what the request names: a foreign authority is refused as a foreign Host is, whatever Host says.
 * Called after checkHostField (an HTTP/1.1 request still needs its one Host field). Targets in
 * origin form (a leading `/`) cost one character test.
 */
export function toOriginForm(req: IncomingMessage): void {
  const url = req.url ?? '/';
  if (url.charCodeAt(0) === 47 /* '/' */) return;
  const m = /^https?:\/\/([^/?#]*)([/?][^#]*)?$/i.exec(url);
  if (m === null) return; // not a URL of this scheme: it matches no route (404), as before
  const authority = m[1] as string;
  // RFC 9110 section 4.2.1: an http URI without a host is invalid; 4.2.4: userinfo is an error.
  if (authority === '' || authority.includes('@')) {
    throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `request target '${url}' has no valid authority (RFC 9110 section 4.2)`);
  }
  const rest = m[2] ?? '/';
  req.url = rest.charCodeAt(0) === 63 /* '?' */ ? `/${rest}` : rest;
  req.headers.host = authority;
}

/** `name`, `name:port`, `[v6]`, `[v6]:port` -> the lower-case name (v6 without brackets). */
function hostName(host: string): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m) return null;
  return m[1] !== undefined ? m[1].toLowerCase() : normalizeName(m[2] as string);
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'ws:': '80', 'https:': '443', 'wss:': '443' };

/**
 * The page's origin names the same host and port the request was sent to. The scheme is not
 * compared: behind a TLS-terminating proxy the page is https and the proxied request plain http.
 */
function sameOrigin(origin: URL, host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = hostName(host);
  if (name === null) return false;
  const originName = normalizeName(origin.hostname.replace(/^\[(.*)\]$/, '$1'));
  const defaultPort = DEFAULT_PORTS[origin.protocol] ?? '';
  const hostPort = /:(\d{1,5})$/.exec(host.trim())?.[1] ?? defaultPort;
  return originName === name && (origin.port || defaultPort) === hostPort;
}
