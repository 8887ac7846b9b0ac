// The web console shows the desired document the device did not apply (docs/api.md "Web
// console"): state/reported has said it in `ignored` since d0b2a3f, but the page (GET /v1/status
// and the SSE `metrics` topic) never saw it. Now /v1/status carries it as `cloud.ignored`, every
// metrics push while there is one, and the page shows its code and reason as text (the reason is
// the device's own bounded words, and may hold what looks like markup): it appears without a
// reload and goes when a document is applied. Real Mosquitto, the runtime with its cloud agent,
// headless Chromium.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Browser } from 'puppeteer-core';
import { topics } from '../../cloud-sync/protocol/index.js';
import { connectClient, PREFIX, publishDesired } from '../cloud-sync/helpers/mqtt-client.js';
import { waitFor } from '../helpers/clients.js';
import { launchChromium, onlyOrigin, screenshot } from '../helpers/chromium.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

const DEVICE = `console-${randomUUID().slice(0, 8)}`;
let broker: Mosquitto;
let browser: Browser;
let repo: TempRepository;
let rt: TestRuntime;

before(async () => {
  broker = await startMosquitto();
  browser = await launchChromium();
  repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k } } });
  rt = await startRuntime(repo.dir, { device: { id: DEVICE }, cloud: { mqttUrl: broker.url, reconnect: { minMs: 50, maxMs: 500 } } });
});
after(async () => {
  await browser?.close();
  await rt?.stop();
  repo?.remove();
  await publishDesired(broker.url, DEVICE, null).catch(() => undefined);
  await broker?.close();
});

type Ignored = { version: number; code?: string; reason: string };
async function statusIgnored(): Promise<Ignored | undefined> {
  const s = (await (await fetch(`${rt.baseUrl}/v1/status`)).json()) as { cloud?: { ignored?: Ignored } };
  return s.cloud?.ignored;
}

test('a desired document refused unread: its code and reason on the page, as text, live; gone once a document applies', async () => {
  const page = await browser.newPage();
  const foreign = await onlyOrigin(page, new URL(rt.baseUrl).origin);
  await page.goto(`${rt.baseUrl}/`);
  await page.waitForSelector('#models tbody tr[data-model="vad"]', { timeout: 20_000 });
  await waitFor(() => rt.runtime.eventStreams.count === 1, 20_000, 'the console has its event stream');
  await page.waitForFunction(`document.getElementById('connectivity').textContent === 'online'`, { timeout: 20_000 });
  assert.equal(await page.$eval('#ignored', (e) => e.textContent), '-');

  // Not JSON, and what looks like markup in the part the reason quotes.
  const c = await connectClient(broker.url);
  await c.publishAsync(topics(PREFIX, DEVICE).desired, '{"version": 7, <img src=x id=xss-ignored>', { qos: 1, retain: true });
  await c.endAsync();
  const note = await waitFor(() => statusIgnored(), 20_000, 'GET /v1/status cloud.ignored');
  assert.equal(note.version, 7);
  assert.equal(note.code, 'PERCH_ERR_MQTT_PAYLOAD_INVALID');
  // Pushed with the metrics, once a second: no reload.
  await page.waitForFunction(`document.getElementById('ignored').textContent.includes('PERCH_ERR_MQTT_PAYLOAD_INVALID')`, { timeout: 20_000 });
  const shown = await page.$eval('#ignored', (e) => e.textContent ?? '');
  assert.equal(shown, `PERCH_ERR_MQTT_PAYLOAD_INVALID: ${note.reason}`);
  assert.match(shown, /desired version 7 is not JSON/);
  assert.equal(await page.evaluate(`document.querySelectorAll('img').length`), 0, 'no element made from the reason');
  await screenshot(page, 'console-ignored');

  // A document applied: the note goes, from the status and from the page.
  await publishDesired(broker.url, DEVICE, { version: 8, models: {} });
  await waitFor(async () => (await statusIgnored()) === undefined, 20_000, 'the note gone from GET /v1/status');
  await page.waitForFunction(`document.getElementById('ignored').textContent === '-'`, { timeout: 20_000 });
  assert.deepEqual(foreign, [], 'requests to other origins');
  await page.close();
});
