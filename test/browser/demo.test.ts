import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, hasChromium, launchChromium } from '../helpers/browser.js';
import { startTestServer, type TestServer } from '../helpers/pixgate.js';

/**
 * The demo page of `pixgate dev`, end to end in Chromium: sign in as a dev user, upload, see the
 * library, change visibility, view the image by every method, and take a screenshot. With
 * UPDATE_DEMO_SCREENSHOT=1 that screenshot becomes the README's (docs/demo.png); otherwise it goes
 * to the temp dir, so a test run leaves the checkout as it found it.
 */

const run = hasChromium();
const SCREENSHOT = process.env.UPDATE_DEMO_SCREENSHOT
  ? fileURLToPath(new URL('../../docs/demo.png', import.meta.url))
  : join(tmpdir(), `pixgate-demo-${process.pid}.png`);

let server: TestServer;
let browser: Browser;

/**
 * Polls an expression with page.evaluate: page.waitForFunction evaluates strings with eval()
 * inside the page, which the demo page's CSP (script-src 'self') rightly forbids.
 */
async function until(page: Page, expression: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A small landscape, drawn as SVG and rasterized, so the screenshot shows something. */
function landscape(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#3b6fd8"/><stop offset="1" stop-color="#f7c59f"/></linearGradient></defs>
    <rect width="800" height="600" fill="url(#sky)"/>
    <circle cx="590" cy="190" r="70" fill="#ffe29a"/>
    <polygon points="0,600 0,380 180,220 330,400 470,260 640,420 800,300 800,600" fill="#33425b"/>
    <polygon points="0,600 0,470 220,380 420,500 600,420 800,480 800,600" fill="#1f2a3a"/>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

beforeAll(async () => {
  if (!run) return;
  server = await startTestServer({ dev: true });
  browser = await launchChromium();
});

afterAll(async () => {
  if (!run) return;
  await browser.close();
  await server.destroy();
});

describe.skipIf(!run)('the demo page', () => {
  it('signs in, uploads, and shows one image by every method', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1280, height: 1000 });
    await page.goto(`${server.url}/`);
    await page.click('[data-user="alice"]');
    await until(page, `document.querySelector('#whoami').textContent === 'signed in as alice'`);

    await page.setInputFiles('#file', {
      name: 'landscape.png',
      mimeType: 'image/png',
      buffer: await landscape(),
    });
    await page.selectOption('#visibility', 'private');
    await page.click('#upload-button');
    await page.waitForSelector('.thumb');
    const id = (await page.getAttribute('.thumb', 'data-id')) as string;

    await page.click('.thumb button.view');
    await until(
      page,
      `[...document.querySelectorAll('[data-method]')].length === 7 &&
       [...document.querySelectorAll('[data-method]')].every((card) => card.dataset.state !== 'loading')`,
    );
    const states = Object.fromEntries(
      (await page.evaluate(
        `[...document.querySelectorAll('[data-method]')].map((card) => [card.dataset.method, card.dataset.state])`,
      )) as [string, string][],
    );
    expect(states).toMatchObject({
      blob: 'ok',
      query: 'ok',
      cookie: 'ok',
      'data-uri': 'ok',
      'service-worker': 'ok',
      'signed-url': 'ok',
      'share-link': 'ok',
    });

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect((await stat(SCREENSHOT)).size).toBeLessThan(1024 * 1024);
    if (!process.env.UPDATE_DEMO_SCREENSHOT) await rm(SCREENSHOT);

    // Visibility from the library card.
    await page.selectOption('.thumb select', 'public');
    await expect
      .poll(async () => {
        const meta = await fetch(`${server.url}/v1/images/${id}/meta`);
        return meta.status === 200 ? ((await meta.json()) as { visibility: string }).visibility : 'hidden';
      })
      .toBe('public');

    // Another user sees their own (empty) library.
    await page.click('[data-user="bob"]');
    await until(page, `document.querySelector('#whoami').textContent === 'signed in as bob'`);
    await until(page, `document.querySelector('#library').textContent.includes('No images yet')`);
    await page.close();
  });
});
