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
  if (header?.startsWith('Bearer ')) given = header.slice(7).trim();
  else if (allowQuery) given = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
  if (given === null) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The same check for a transport that hands over the Authorization value itself (gRPC metadata). */
export function bearerMatches(header: string | undefined, expected: string | null): boolean {
  if (expected === null) return true;
  if (!header?.startsWith('Bearer ')) return false;
  const a = createHash('sha256').update(header.slice(7).trim()).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
