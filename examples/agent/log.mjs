// JSON-line events of the example agent, one object a line, for people and
// for tests: {"ts","event",...}. They go to AGENT_LOG_FILE when it is set
// (appended, one write a line, so the worker and its job processes can
// share it), else to stdout. They never hold a token or a secret.
import { appendFileSync } from 'node:fs';

const file = process.env.AGENT_LOG_FILE;

export function emit(event, fields = {}) {
  const line = JSON.stringify({ ts: new Date().toISOString(), event, pid: process.pid, ...fields }) + '\n';
  if (file) {
    appendFileSync(file, line);
  } else {
    process.stdout.write(line);
  }
}

// parseDispatch reads the broker's dispatch metadata,
// {"org","agent","metadata"}; anything else gives {}.
export function parseDispatch(metadata) {
  try {
    const md = JSON.parse(metadata || '');
    return md && typeof md === 'object' && !Array.isArray(md) ? md : {};
  } catch {
    return {};
  }
}
