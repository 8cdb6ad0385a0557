import assert from 'node:assert/strict';
import { inspect } from 'node:util';

const lines = [];
const secrets = new Set();
let installed = false;

/**
 * guardConsole records every console line of this test file; the file's
 * last test calls checkConsole.
 */
export function guardConsole() {
  if (installed) return;
  installed = true;
  for (const level of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      lines.push(args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 6 }))).join(' '));
      orig(...args);
    };
  }
}

/**
 * checkConsole fails if any console line recorded since guardConsole
 * contains a secret registered with noteSecret (keys, tickets, LiveKit
 * tokens). Each test file's last test.
 */
export function checkConsole() {
  assert.ok(installed, 'guardConsole was not called');
  assert.ok(secrets.size > 0, 'no secret was registered: the console check checked nothing');
  for (const line of lines) for (const s of secrets) assert.ok(!line.includes(s), 'a console line carries a secret: ' + line.slice(0, 80));
  return lines.length;
}

/** noteSecret registers values that must never reach the console or an error. */
export function noteSecret(...values) {
  for (const v of values) if (v) secrets.add(v);
}

/** allSecrets is every secret registered so far. */
export function allSecrets() {
  return [...secrets];
}

/**
 * assertNoSecret fails if err, shown any way a program might show it
 * (message, String, stack, JSON, util.inspect with its cause), contains a
 * registered secret or one of extra.
 */
export function assertNoSecret(err, extra = []) {
  const views = [String(err?.message), String(err), String(err?.stack), JSON.stringify(err), inspect(err, { depth: 6 })];
  for (const s of [...secrets, ...extra]) {
    if (!s) continue;
    for (const v of views) assert.ok(!v.includes(s), `secret in error view: ${v.slice(0, 200)}`);
  }
}

/** recordingSleep is a retry.sleep that records the waits and resolves at once. */
export function recordingSleep() {
  const waits = [];
  const sleep = async (ms, signal) => {
    if (signal?.aborted) throw signal.reason;
    waits.push(ms);
  };
  return { waits, sleep };
}
