// `perch status [--url URL] [--token T] [--json]` (docs/cli.md): the running device's status from
// its HTTP API (GET /v1/status, docs/api.md), as a table or as the JSON document itself. An
// unreachable device and a refused token are coded errors (PERCH_ERR_DEVICE_UNREACHABLE,
// PERCH_ERR_UNAUTHORIZED), printed by the binary with exit code 1.
import { parseArgs } from 'node:util';
import { PerchError } from '../runtime/base/errors.js';
import { MAX_TIMER_MS } from '../runtime/base/timer-ms.js';
import { formatStatus, type DeviceStatus } from './status-table.js';

export const STATUS_HELP = `Usage: perch status [--url URL] [--token TOKEN] [--json] [--timeout-ms MS]

The running device's status from its HTTP API: models with version and readiness, queues, the
outbox backlog and its oldest event, connectivity, the cloud broker and the last model changes.

  --url URL        the device's API (default http://127.0.0.1:PERCH_PORT, or :8080)
  --token TOKEN    the API token (default: the PERCH_API_TOKEN environment variable)
  --json           print the status document as JSON instead of a table
  --timeout-ms MS  how long to wait for the device (default 5000)
`;

export async function status(args: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out(STATUS_HELP);
    return 0;
  }
  const base = values.url ?? `http://127.0.0.1:${process.env.PERCH_PORT ?? '8080'}`;
  let url: URL;
  try {
    url = new URL('/v1/status', base);
  } catch {
    throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `--url '${base}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `--url '${base}' is not an http:// or https:// URL`);
  // fetch refuses a URL with credentials; said here, not as an unreachable device (and not echoed).
  if (url.username || url.password) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', '--url must not hold a user name or password: pass the API token with --token or PERCH_API_TOKEN');
  // Decimal digits only, and no longer than a timer can wait: Number() took '0x10' as 16 ms and
  // '1e99' made AbortSignal.timeout throw, reported as an unreachable device.
  const rawTimeout = values['timeout-ms'] ?? '5000';
  const timeoutMs = /^\d{1,10}$/.test(rawTimeout) ? Number(rawTimeout) : NaN;
  if (!(timeoutMs >= 1 && timeoutMs <= MAX_TIMER_MS)) {
    throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `--timeout-ms '${rawTimeout}' is not a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`);
  }
  const token = values.token ?? process.env.PERCH_API_TOKEN;
  const doc = await fetchStatus(url, token, timeoutMs);
  out(values.json ? `${JSON.stringify(doc, null, 2)}\n` : formatStatus(doc, url.origin, Date.now()));
  return 0;
}

async function fetchStatus(url: URL, token: string | undefined, timeoutMs: number): Promise<DeviceStatus> {
  let res: Response;
  try {
    res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new PerchError('PERCH_ERR_DEVICE_UNREACHABLE', `no answer from ${url.origin} (${cause}): is perch serve running there? (--url)`, { cause: err });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new PerchError('PERCH_ERR_DEVICE_UNREACHABLE', `${url.origin} answered ${res.status} with something that is not Perch's JSON: is it a Perch device?`);
  }
  if (res.status === 401) {
    throw new PerchError('PERCH_ERR_UNAUTHORIZED', token
      ? `${url.origin} refused the token: check PERCH_API_TOKEN or --token`
      : `${url.origin} requires an API token: set PERCH_API_TOKEN or pass --token`);
  }
  if (!res.ok) {
    const e = body as { code?: string; error?: string };
    if (res.status === 404 && e.code === 'PERCH_ERR_ROUTE_NOT_FOUND') {
      throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `${url.origin} has no /v1/status: a Perch older than this CLI?`);
    }
    throw new PerchError('PERCH_ERR_DEVICE_UNREACHABLE', `${url.origin} answered ${res.status}: ${e.code ?? ''} ${e.error ?? ''}`.trim());
  }
  return body as DeviceStatus;
}
