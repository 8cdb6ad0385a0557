// The library itself never writes to the console: no code path could log a
// ticket, a key or a token. (The other test files also capture every
// console line while they run and check none carries a secret.)
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

test('no console call in the built library', () => {
  const dir = new URL('../dist/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
  assert.ok(files.length >= 5, 'dist/ is built');
  for (const f of files) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    assert.doesNotMatch(src, /\bconsole\s*\.|\bdebugger\b/, f);
  }
});
