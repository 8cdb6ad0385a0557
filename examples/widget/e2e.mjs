// Drives the widget in Debian's headless Chromium with playwright-core and
// reports what the page showed. Used by the Go end-to-end test:
//   node e2e.mjs <page url> <screenshot.png>
// Prints one JSON line: {"state","detail","room","console"}.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, shot] = process.argv.slice(2);
const terminal = new Set(['connected', 'origin_not_allowed', 'broker_unreachable', 'unauthorized', 'rate_limited',
  'livekit_error', 'livekit_unavailable', 'livekit_not_configured', 'token_used', 'error', 'disconnected']);

const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'vb-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const page = ctx.pages()[0] || await ctx.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
let result;
try {
  await page.goto(url);
  await page.waitForFunction((states) => states.includes(document.getElementById('status')?.dataset.state),
    [...terminal], { timeout: 30000 });
  // Hold "connected" for a moment: a room that drops at once is not connected.
  await page.waitForTimeout(500);
  result = await page.evaluate(() => ({
    state: document.getElementById('status').dataset.state,
    detail: document.getElementById('detail').textContent,
    room: document.getElementById('room').textContent,
  }));
} catch (e) {
  result = { state: 'timeout', detail: String(e) };
}
await page.screenshot({ path: shot, fullPage: true });
await ctx.close();
result.console = consoleLines.slice(-20);
console.log(JSON.stringify(result));
