// Drives the widget in Debian's headless Chromium (playwright-core) for the
// Go browser tests (internal/app/browser_test.go): one JSON command a line
// on stdin, one JSON answer a line on stdout, in order.
//
//   CHROMIUM=/usr/bin/chromium FAKE_MIC=speech.wav node e2e.mjs
//
// FAKE_MIC, when set, is a WAV file the fake microphone plays in a loop
// (Chromium's --use-file-for-fake-audio-capture); without it the fake
// microphone beeps. MIC_PERMISSION=deny refuses the page the microphone.
// Commands, {"op": ..., ...}:
//   goto {url}                   load a page (a fresh one each time)
//   click {selector}             a real click: the user gesture that unlocks audio
//   fill {selector, value}
//   wait {states, timeoutMs}     until the widget's data-state is one of states
//   snapshot                     what the widget shows (see snapshot below)
//   shot {path}                  a full-page screenshot
//   hold {suffix}                hold every request whose URL path ends with suffix...
//   held                         ...count them...
//   release                      ...and let them go on
//   close
// Answers: {"ok":true,"result":...} or {"ok":false,"error":"..."}.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--use-fake-device-for-media-stream'];
// The permission prompt is answered yes, unless MIC_PERMISSION=deny: then
// headless Chromium answers every microphone request no.
if (process.env.MIC_PERMISSION !== 'deny') args.push('--use-fake-ui-for-media-stream');
if (process.env.FAKE_MIC) args.push('--use-file-for-fake-audio-capture=' + process.env.FAKE_MIC);

const profile = mkdtempSync(join(tmpdir(), 'vb-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args,
  // Playwright mutes headless Chromium's audio output by default; the
  // widget's audio then never reaches an output device. Keep it unmuted so
  // the agent's voice plays exactly as for a user.
  ignoreDefaultArgs: ['--mute-audio'],
  viewport: { width: 620, height: 760 },
});
let page = ctx.pages()[0] || (await ctx.newPage());
const consoleLines = [];
const held = [];
let holdSuffix = null;

function watch(p) {
  p.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
  p.on('pageerror', (e) => consoleLines.push('pageerror: ' + e.message));
}
watch(page);
await ctx.route('**/*', (route) => {
  if (holdSuffix && new URL(route.request().url()).pathname.endsWith(holdSuffix)) {
    held.push(route);
  } else {
    route.continue();
  }
});

// snapshot reads what the widget shows, from the DOM only.
function snapshot() {
  return page.evaluate(() => {
    const root = document.getElementById('voicebroker');
    const text = (sel) => root?.querySelector(sel)?.textContent ?? '';
    const visible = (sel) => {
      const el = root?.querySelector(sel);
      return !!el && !el.closest('[hidden]') && el.getClientRects().length > 0;
    };
    const level = (id) => {
      const el = document.getElementById(id);
      return { rms: Number(el?.dataset.rms || 0), peak: Number(el?.dataset.peak || 0), audibleMs: Number(el?.dataset.audibleMs || 0) };
    };
    const facts = {};
    for (const dd of root?.querySelectorAll('dd[data-fact]') ?? []) facts[dd.dataset.fact] = dd.textContent;
    return {
      state: root?.dataset.state ?? '',
      code: root?.dataset.code ?? '',
      status: text('.vb-status'),
      step: text('.vb-step'),
      sentence: text('.vb-sentence'),
      errorLine: text('.vb-code'),
      buttons: [...(root?.querySelectorAll('button') ?? [])].filter((b) => !b.closest('[hidden]')).map((b) => b.textContent),
      participants: [...(root?.querySelectorAll('.vb-person') ?? [])].map((li) => ({
        identity: li.dataset.identity, kind: li.dataset.kind, mic: li.dataset.mic, speaking: li.dataset.speaking === 'true',
      })),
      levels: { mic: level('vb-mic'), agent: level('vb-agent') },
      levelsShown: visible('.vb-levels'),
      facts,
      audioElements: root?.querySelectorAll('.vb-audio audio').length ?? 0,
      pageText: document.body.innerText,
    };
  }).then((s) => ({ ...s, console: consoleLines.slice(-40) }));
}

const ops = {
  async goto({ url }) {
    await page.close().catch(() => {});
    page = await ctx.newPage();
    watch(page);
    await page.goto(url);
    return null;
  },
  async click({ selector }) {
    await page.click(selector, { timeout: 10000 });
    return null;
  },
  async fill({ selector, value }) {
    await page.fill(selector, value, { timeout: 10000 });
    return null;
  },
  async wait({ states, timeoutMs = 30000 }) {
    await page.waitForFunction((s) => s.includes(document.getElementById('voicebroker')?.dataset.state), states, { timeout: timeoutMs });
    return snapshot();
  },
  snapshot,
  async shot({ path }) {
    await page.screenshot({ path, fullPage: true });
    return null;
  },
  async hold({ suffix }) {
    holdSuffix = suffix;
    return null;
  },
  async held() {
    return held.length;
  },
  async release() {
    holdSuffix = null;
    // A request the page gave up on meanwhile (a cancelled call) is gone.
    for (const r of held.splice(0)) await r.continue().catch(() => {});
    return null;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let cmd;
  let answer;
  try {
    cmd = JSON.parse(line);
    if (cmd.op === 'close') break;
    const op = ops[cmd.op];
    if (!op) throw new Error('unknown op ' + cmd.op);
    answer = { ok: true, result: (await op(cmd)) ?? null };
  } catch (e) {
    answer = { ok: false, error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await ctx.close().catch(() => {});
rmSync(profile, { recursive: true, force: true });
process.stdout.write(JSON.stringify({ ok: true, result: 'closed' }) + '\n');
