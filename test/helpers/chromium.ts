// A real headless Chromium for the console tests (Debian's `chromium`, driven by puppeteer-core,
// which downloads no browser). PERCH_CHROMIUM names another binary. A missing browser fails the
// test with a sentence saying how to install it: .ci/run installs it, so it never skips.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { REPO_ROOT } from './paths.js';

export const ARTIFACTS = join(REPO_ROOT, 'build', 'test-artifacts');

export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.PERCH_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: install it (apt-get install -y --no-install-recommends chromium, as .ci/run does) or set PERCH_CHROMIUM`);
  }
  return puppeteer.launch({
    executablePath,
    headless: true,
    // Root in a container: no sandbox; no GPU there either.
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--disable-background-networking', '--disable-component-update'],
  });
}

/**
 * Lets the page reach `origin` only: any request elsewhere (a CDN, a font, an analytics beacon)
 * is aborted and listed in the returned array, which the test asserts empty.
 */
export async function onlyOrigin(page: Page, origin: string): Promise<string[]> {
  const foreign: string[] = [];
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    const url = req.url();
    if (url.startsWith('data:') || url.startsWith('blob:') || new URL(url).origin === origin) {
      void req.continue();
    } else {
      foreign.push(url);
      void req.abort();
    }
  });
  return foreign;
}

/** Saves a screenshot under build/test-artifacts/ and prints where. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  process.stdout.write(`# screenshot: ${path}\n`);
  return path;
}
