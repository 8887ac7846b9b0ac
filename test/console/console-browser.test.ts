// The web console in a real headless Chromium against a real runtime serving the shipped models
// (docs/api.md "Web console"): no request leaves the device; the models show; an event emitted
// over WebSocket appears within a second (measured in the page, pushed over SSE); the backlog
// rises while the cloud broker is unreachable; the token is asked for; OCR on an uploaded image;
// a phone-sized screen. Screenshots go to build/test-artifacts/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'puppeteer-core';
import { waitFor, WsClient } from '../helpers/clients.js';
import { freePort } from '../helpers/free-port.js';
import { launchChromium, onlyOrigin, screenshot } from '../helpers/chromium.js';
import { FIXTURES, SHIPPED_MODELS } from '../helpers/paths.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

const TOKEN = 'console-browser-token';

describe('web console in headless Chromium', () => {
  let browser: Browser;
  let rt: TestRuntime;
  before(async () => {
    browser = await launchChromium();
    // A cloud broker on a loopback port nobody listens on: the device stays offline.
    rt = await startRuntime(SHIPPED_MODELS, { server: { apiToken: TOKEN }, cloud: { mqttUrl: `mqtt://127.0.0.1:${await freePort()}` } });
  });
  after(async () => {
    await browser?.close();
    await rt?.stop();
  });

  test('asks for the token, shows the shipped models, live events within a second, the backlog rising offline; only the device is contacted', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const origin = new URL(rt.baseUrl).origin;
    const foreign = await onlyOrigin(page, origin);
    // Every event row the page adds, with the wall-clock time it was added.
    // (Browser-side code as strings: the tests compile without the DOM's types.)
    await page.evaluateOnNewDocument(`
      window.seen = [];
      new MutationObserver((records) => {
        const at = Date.now();
        for (const r of records) {
          for (const n of r.addedNodes) {
            if (n instanceof HTMLElement && n.dataset.seq !== undefined && n.parentElement && n.parentElement.id === 'events') window.seen.push([n.dataset.seq, at]);
          }
        }
      }).observe(document, { childList: true, subtree: true });
    `);
    await page.goto(`${rt.baseUrl}/`);
    await page.waitForSelector('#login:not([hidden])', { timeout: 20_000 });
    await page.type('#token', TOKEN);
    await page.click('#login button');
    await page.waitForSelector('#models tbody tr[data-model="silero-vad"]', { timeout: 20_000 });
    const shown = await page.$$eval('#models tbody tr', (rows) => rows.map((r) => r.getAttribute('data-model')));
    const shipped = rt.runtime.registry.status().map((m) => m.name).sort();
    assert.deepEqual([...new Set(shown)].sort(), shipped);
    assert.ok(shipped.includes('ocr') && shipped.includes('vad-segments'));
    assert.equal(await page.$eval('#connectivity', (e) => e.textContent), 'offline');
    await waitFor(() => rt.runtime.eventStreams.count === 1, 20_000, 'the console has its event stream');

    const ws = await WsClient.connect(rt.wsUrl, { token: TOKEN });
    try {
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        const a = await ws.request({ op: 'emit', type: 'console.test', payload: { i } });
        const ackedAt = Date.now();
        assert.ok(a.ok, JSON.stringify(a.body));
        const seq = String(a.body.seq);
        await page.waitForFunction(`window.seen.some(([q]) => q === ${JSON.stringify(seq)})`, { timeout: 20_000 });
        const seenAt = (await page.evaluate(`window.seen.find(([q]) => q === ${JSON.stringify(seq)})[1]`)) as number;
        delays.push(seenAt - ackedAt);
      }
      process.stdout.write(`# emit ack -> row in the page (ms): ${delays.join(', ')}\n`);
      for (const d of delays) assert.ok(d < 1000, `an event took ${d} ms to appear`);
      assert.match(await page.$eval('#events li', (e) => e.textContent ?? ''), /console\.test/);
      // What clients emit is shown as text, never parsed as markup (app.js: textContent only).
      const markup = await ws.request({ op: 'emit', type: '<img src=x id=xss-type>', payload: { html: '<img src=x id=xss-payload><script>window.xss=1</script>' } });
      assert.ok(markup.ok, JSON.stringify(markup.body));
      await page.waitForFunction(`window.seen.some(([q]) => q === ${JSON.stringify(String(markup.body.seq))})`, { timeout: 20_000 });
      assert.match(await page.$eval('#events li', (e) => e.textContent ?? ''), /<img src=x id=xss-type>.*<img src=x id=xss-payload>/);
      assert.equal(await page.evaluate(`document.querySelectorAll('img, #events script').length`), 0, 'no element made from event text');

      // Offline: every event stays in the outbox, and the page's backlog follows.
      // What the page shows now (its last metrics sample: at most the stored count).
      const before = Number(await page.$eval('#backlog', (e) => e.textContent));
      await Promise.all(Array.from({ length: 25 }, (_, i) => ws.request({ op: 'emit', type: 'console.backlog', payload: { i } })));
      const stored = rt.runtime.store.outbox.stats().count;
      assert.ok(stored >= before + 25);
      await page.waitForFunction(`Number(document.getElementById('backlog').textContent) >= ${stored}`, { timeout: 20_000 });
      await screenshot(page, 'console-desktop');
    } finally {
      await ws.close();
    }
    assert.deepEqual(foreign, [], 'requests to other origins');
    await page.close();
  });

  test('try it: OCR on an uploaded image draws the text; a phone screen has no sideways scroll', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const foreign = await onlyOrigin(page, new URL(rt.baseUrl).origin);
    // A tab that already has the token (sessionStorage, as after the login above).
    await page.evaluateOnNewDocument(`sessionStorage.setItem('perch.token', ${JSON.stringify(TOKEN)})`);
    await page.goto(`${rt.baseUrl}/`);
    await page.waitForSelector('#models tbody tr[data-model="ocr"]', { timeout: 20_000 });
    await page.select('#try-model', 'ocr');
    const input = await page.$('#try-file');
    assert.ok(input);
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(join(FIXTURES, 'images', 'text_edge_ocr_2026.png'));
    await page.click('#try-form button');
    await page.waitForFunction(`document.getElementById('try-list').textContent.includes('Edge OCR 2026') || document.getElementById('try-error').textContent !== ''`, { timeout: 60_000 });
    assert.equal(await page.$eval('#try-error', (e) => e.textContent), '');
    assert.ok(await page.evaluate(`!document.getElementById('try-canvas').hidden && document.getElementById('try-canvas').width > 0`));
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px on a phone`);
    await screenshot(page, 'console-phone-ocr');
    assert.deepEqual(foreign, []);
    await page.close();
  });
});

