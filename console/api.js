// The device's HTTP API as the console uses it (docs/api.md). The API token, when the device
// wants one, is asked for once and kept in sessionStorage (gone when the tab closes). fetch sends
// it as a bearer header; EventSource cannot send headers, so /v1/events gets it as ?token=.
const KEY = 'perch.token';

export class Unauthorized extends Error {}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, authorization: `Bearer ${t}` } : extra;
}

async function answer(res) {
  if (res.status === 401) throw new Unauthorized('the device wants its API token');
  const type = res.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body && body.code ? `${body.code}: ${body.error}` : `HTTP ${res.status}`);
  return body;
}

export async function getJson(path) {
  return answer(await fetch(path, { headers: headers(), cache: 'no-store' }));
}

/** POST a body (a File, or JSON text) to an infer endpoint. */
export async function post(path, body, contentType) {
  return answer(await fetch(path, { method: 'POST', body, headers: headers({ 'content-type': contentType }) }));
}

/** Server-Sent Events; the browser reconnects by itself with Last-Event-ID. */
export function events(topics, lastEventId) {
  const q = new URLSearchParams({ topics: topics.join(',') });
  const t = token();
  if (t) q.set('token', t);
  if (lastEventId != null) q.set('lastEventId', String(lastEventId));
  return new EventSource(`/v1/events?${q}`);
}
