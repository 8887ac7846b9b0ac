import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** RFC 6750 section 3: a 401 names the scheme it wants. */
export const WWW_AUTHENTICATE = 'Bearer realm="perch"';

/**
 * Checks the bearer token (Authorization header, or ?token= for WebSocket clients that cannot
 * set headers). Compares SHA-256 digests with timingSafeEqual: constant time, and no length leak.
 */
export function tokenMatches(req: IncomingMessage, expected: string | null, allowQuery: boolean): boolean {
  if (expected === null) return true;
  let given: string | null = null;
  const header = req.headers.authorization;
  if (header !== undefined && isBearer(header)) given = header.slice(7).trim();
  else if (allowQuery) given = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
  if (given === null) return false;
  return timingSafeEqual(createHash('sha256').update(given).digest(), digestOf(expected));
}

/**
 * The expected token's digest, kept while the token stays the same: it was hashed again for every
 * request (a second createHash per request; docs/benchmarks.md, issue 20). A changed token
 * (config reload) is hashed once more. What is compared, and how, is unchanged.
 */
let expectedToken: string | null = null;
let expectedDigest: Buffer | null = null;
function digestOf(expected: string): Buffer {
  if (expected !== expectedToken || expectedDigest === null) {
    expectedDigest = createHash('sha256').update(expected).digest();
    expectedToken = expected;
  }
  return expectedDigest;
}

/** The same check for a transport that hands over the Authorization value itself (gRPC metadata). */
export function bearerMatches(header: string | undefined, expected: string | null): boolean {
  if (expected === null) return true;
  if (header === undefined || !isBearer(header)) return false;
  return timingSafeEqual(createHash('sha256').update(header.slice(7).trim()).digest(), digestOf(expected));
}

/**
 * `Bearer <token>` with the scheme in any case: RFC 9110 section 11.1, an authentication scheme is
 * case-insensitive (`bearer` and `BEARER` are `Bearer`); only `Bearer ` was taken, and a client
 * library that writes the scheme in lower case got 401 with the right token.
 */
function isBearer(header: string): boolean {
  return header.length >= 7 && header.charCodeAt(6) === 32 && header.slice(0, 6).toLowerCase() === 'bearer';
}
