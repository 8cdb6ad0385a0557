// The ticket flow (mint, trade at /connect, retries, errors) against a
// fake broker on 127.0.0.1 (test/fake-broker.mjs): unit tests of the
// library's wire format. The real broker is exercised by the browser test.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BrokerError, fetchSession, parseRetryAfter, redact } from '../dist/index.js';
import { sleep } from '../dist/http.js';
import { backendProvider, randomKey, startFakeBroker } from './fake-broker.mjs';
import { assertNoSecret, checkConsole, guardConsole, noteSecret, recordingSleep } from './helpers.mjs';
import { verifyProof } from './verify-dpop.mjs';

guardConsole();

let broker;
before(async () => {
  broker = await startFakeBroker();
  noteSecret(broker.sk, broker.pk);
});
after(() => broker.close());

/** fresh starts a new fake broker for one test. */
async function fresh(opts) {
  const b = await startFakeBroker(opts);
  noteSecret(b.sk, b.pk);
  return b;
}

function noteSession(s) {
  noteSecret(s.participantToken);
  return s;
}

function ticketsOf(b) {
  return b.requests.filter((r) => r.path === '/connect').map((r) => /^Bearer (.+)$/.exec(r.headers.authorization)[1]);
}

test('public mode: POST /public/token with the pk_ key, then /connect with the ticket and a DPoP proof', async () => {
  const b = await fresh();
  try {
    const s = noteSession(await fetchSession({ broker: b.url, agent: 'florencia', channel: 'chat', publishableKey: b.pk }));
    assert.equal(b.requests.length, 2);
    const [mint, conn] = b.requests;
    assert.equal(mint.method, 'POST');
    assert.equal(mint.path, '/public/token');
    assert.equal(mint.headers.authorization, 'Bearer ' + b.pk);
    assert.equal(mint.headers['content-type'], 'application/json');
    assert.equal(mint.headers.cookie, undefined);
    const body = JSON.parse(mint.body);
    assert.deepEqual(Object.keys(body).sort(), ['agent', 'channel', 'dpop_jkt']);
    assert.equal(body.agent, 'florencia');
    assert.equal(body.channel, 'chat');
    assert.match(body.dpop_jkt, /^[A-Za-z0-9_-]{43}$/);

    assert.equal(conn.path, '/connect');
    assert.equal(conn.body, '', '/connect carries the ticket in the header only');
    const ticket = ticketsOf(b)[0];
    noteSecret(ticket);
    const v = await verifyProof(conn.headers.dpop, { htm: 'POST', htu: b.url + '/connect', accessToken: ticket });
    assert.equal(v.jkt, body.dpop_jkt, 'the proof is signed by the key whose thumbprint was sent at mint');

    assert.equal(s.serverUrl, 'wss://livekit.invalid');
    assert.match(s.roomName, /^agent_florencia_\d+_/);
    assert.match(s.participantIdentity, /^user-/);
    assert.equal(s.expiresIn, 300);
    assert.equal(b.proofs.length, 1);
  } finally {
    await b.close();
  }
});

test('backend mode: the provider gets the thumbprint, the backend binds the ticket, /connect proves the key', async () => {
  const calls = [];
  const s = noteSession(await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: backendProvider(broker, calls) }));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].agent, 'florencia');
  assert.equal(calls[0].channel, 'webrtc');
  assert.equal(calls[0].attempt, 1);
  assert.match(calls[0].dpopJkt, /^[A-Za-z0-9_-]{43}$/);
  // The fake broker bound the ticket (cnf.jkt) and accepted the proof only
  // because its key's thumbprint is the one the provider was given.
  const proof = broker.proofs.at(-1);
  assert.equal(proof.jkt, calls[0].dpopJkt);
  assert.ok(s.participantToken);
});

test('backend mode: the ticket is traded at its own server, not at the broker option', async () => {
  const other = await fresh();
  try {
    const provider = async () => other.mint({ agent: 'florencia' });
    noteSession(await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: provider, dpop: false }));
    assert.equal(other.count('/connect'), 1);
  } finally {
    await other.close();
  }
});

test('backend mode: a Pinecall-style provider (no arguments, returns res.json()) and one returning a bare token string', async () => {
  const pinecall = async () => {
    const res = await fetch(broker.url + '/token', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + broker.sk, 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent: 'florencia', channel: 'webrtc' }),
    });
    return res.json();
  };
  noteSession(await fetchSession({ agent: 'florencia', tokenProvider: pinecall, dpop: false }));
  const bare = async () => broker.mint().token;
  noteSession(await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: bare, dpop: false }));
});

test('dpop: false sends no dpop_jkt, no thumbprint to the provider and no DPoP header', async () => {
  const b = await fresh();
  try {
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, dpop: false }));
    assert.deepEqual(Object.keys(JSON.parse(b.requests[0].body)).sort(), ['agent', 'channel']);
    assert.equal(b.requests[1].headers.dpop, undefined);
    const calls = [];
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', tokenProvider: backendProvider(b, calls), dpop: false }));
    assert.equal('dpopJkt' in calls[0], false);
    assert.equal(b.requests.at(-1).headers.dpop, undefined);
  } finally {
    await b.close();
  }
});

test('a broker under a path prefix: requests and the proof\'s htu keep the prefix', async () => {
  const b = await fresh({ prefix: '/vb' });
  try {
    noteSession(await fetchSession({ broker: b.url + '/', agent: 'florencia', publishableKey: b.pk }));
    assert.deepEqual(b.requests.map((r) => r.url), ['/vb/public/token', '/vb/connect']);
    assert.equal(b.proofs[0].claims.htu, b.url + '/connect');
  } finally {
    await b.close();
  }
});

test('a ticket refused as token_used is replaced once by a fresh one from the provider', async () => {
  const b = await fresh();
  try {
    const calls = [];
    const inner = backendProvider(b, []);
    const provider = async (req) => {
      calls.push(req);
      const t = await inner(req);
      if (calls.length === 1) b.consume(t.token); // someone else traded the first ticket
      return t;
    };
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', tokenProvider: provider }));
    assert.deepEqual(calls.map((c) => c.attempt), [1, 2]);
    assert.equal(calls[0].dpopJkt, calls[1].dpopJkt, 'the same key binds both tickets');
    const sent = ticketsOf(b);
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0], sent[1]);
  } finally {
    await b.close();
  }
});

test('a ticket refused as token_expired is replaced by a fresh one, in public mode too', async () => {
  const b = await fresh();
  try {
    b.script('/connect', { status: 401, body: { error: 'token_expired', message: 'ticket expired' } });
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }));
    assert.equal(b.count('/public/token'), 2);
    assert.equal(b.count('/connect'), 2);
    const calls = [];
    let n = 0;
    const provider = async (req) => {
      calls.push(req);
      return b.mint({ dpop_jkt: req.dpopJkt, expired: n++ === 0 });
    };
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', tokenProvider: provider }));
    assert.equal(calls.length, 2);
  } finally {
    await b.close();
  }
});

test('re-minting is bounded: a provider that only hands out used tickets fails after retry.remints', async () => {
  const b = await fresh();
  try {
    for (const remints of [0, 1, 3]) {
      let calls = 0;
      const provider = async () => {
        calls++;
        const t = b.mint();
        b.consume(t.token);
        return t;
      };
      const err = await fetchSession({ broker: b.url, agent: 'florencia', tokenProvider: provider, dpop: false, retry: { remints } }).then(
        () => assert.fail('resolved'),
        (e) => e,
      );
      assert.ok(err instanceof BrokerError);
      assert.equal(err.code, 'token_used');
      assert.equal(err.status, 401);
      assert.equal(calls, remints + 1);
      assertNoSecret(err, ticketsOf(b));
    }
  } finally {
    await b.close();
  }
});

test('other refusals are not re-minted', async () => {
  const b = await fresh();
  try {
    b.script('/connect', { status: 401, body: { error: 'dpop_invalid', message: 'proof refused' } });
    const err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'dpop_invalid');
    assert.equal(b.count('/public/token'), 1);
  } finally {
    await b.close();
  }
});

test('429 at /public/token: waits as Retry-After says, then succeeds', async () => {
  const b = await fresh();
  try {
    const rl = { status: 429, headers: { 'Retry-After': '2', 'RateLimit-Limit': '10' }, body: { error: 'rate_limited', message: 'too many requests' } };
    b.script('/public/token', rl, rl);
    const { waits, sleep } = recordingSleep();
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, retry: { sleep } }));
    assert.equal(b.count('/public/token'), 3);
    assert.equal(waits.length, 2);
    for (const w of waits) assert.ok(w >= 2000 && w < 2250, `wait ${w} ms for Retry-After: 2`);
  } finally {
    await b.close();
  }
});

test('429 at /connect: the same ticket is retried with a fresh DPoP proof', async () => {
  const b = await fresh();
  try {
    b.script('/connect', { status: 429, headers: { 'Retry-After': '1' }, body: { error: 'rate_limited', message: 'slow down' } });
    const { waits, sleep } = recordingSleep();
    noteSession(await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, retry: { sleep } }));
    assert.equal(waits.length, 1);
    const conns = b.requests.filter((r) => r.path === '/connect');
    assert.equal(conns.length, 2);
    assert.equal(conns[0].headers.authorization, conns[1].headers.authorization);
    const jti = (p) => JSON.parse(Buffer.from(p.split('.')[1], 'base64url')).jti;
    assert.notEqual(jti(conns[0].headers.dpop), jti(conns[1].headers.dpop));
    assert.equal(b.count('/public/token'), 1, 'a 429 is not a reason to mint again');
  } finally {
    await b.close();
  }
});

test('429 without Retry-After backs off 1 s, 2 s, ...; retries are bounded', async () => {
  const b = await fresh();
  try {
    const rl = { status: 429, body: { error: 'rate_limited', message: 'too many' } };
    b.script('/public/token', rl, rl, rl);
    const { waits, sleep } = recordingSleep();
    const err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, retry: { sleep, rateLimitRetries: 2 } }).catch((e) => e);
    assert.ok(err instanceof BrokerError);
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.status, 429);
    assert.equal(b.count('/public/token'), 3);
    assert.equal(waits.length, 2);
    assert.ok(waits[0] >= 1000 && waits[0] < 1250);
    assert.ok(waits[1] >= 2000 && waits[1] < 2250);
  } finally {
    await b.close();
  }
});

test('a Retry-After longer than retry.maxRetryAfter fails at once with retryAfter set', async () => {
  const b = await fresh();
  try {
    b.script('/public/token', { status: 429, headers: { 'Retry-After': '120' }, body: { error: 'rate_limited', message: 'too many' } });
    const { waits, sleep } = recordingSleep();
    const err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, retry: { sleep, maxRetryAfter: 30 } }).catch((e) => e);
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.retryAfter, 120);
    assert.equal(waits.length, 0);
    assert.equal(b.count('/public/token'), 1);
  } finally {
    await b.close();
  }
});

test('an AbortSignal ends a Retry-After wait at once, with its reason', async () => {
  const b = await fresh();
  try {
    const ac = new AbortController();
    // Abort as soon as the broker has answered 429 (Retry-After: 25 s).
    b.script('/public/token', { status: 429, headers: { 'Retry-After': '25' }, body: { error: 'rate_limited', message: 'x' } });
    const p = fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, signal: ac.signal });
    const started = Date.now();
    while (b.count('/public/token') === 0) await new Promise((r) => setImmediate(r));
    ac.abort();
    const err = await p.catch((e) => e);
    assert.equal(err.name, 'AbortError');
    assert.ok(Date.now() - started < 20000, 'the 25 s wait was cut short');
    assert.equal(b.count('/public/token'), 1);
    assert.equal(b.count('/connect'), 0);
    // Already aborted: no request at all, and a custom reason comes back as is.
    const reason = new Error('user left');
    const err2 = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, signal: AbortSignal.abort(reason) }).catch((e) => e);
    assert.equal(err2, reason);
    assert.equal(b.count('/public/token'), 1);
  } finally {
    await b.close();
  }
});

// If the abort did not cut the 25 s wait short, the 10 s test timeout fails it.
test('the default wait between tries ends when the signal aborts', { timeout: 10000 }, async () => {
  const b = await fresh();
  try {
    b.script('/connect', { status: 429, headers: { 'Retry-After': '25' }, body: { error: 'rate_limited', message: 'x' } });
    const ac = new AbortController();
    let waiting;
    const began = new Promise((r) => (waiting = r));
    // The library's own sleep, observed: abort only once it is waiting.
    const observed = (ms, signal) => {
      waiting(ms);
      return sleep(ms, signal);
    };
    const p = fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, signal: ac.signal, retry: { sleep: observed } });
    assert.ok((await began) >= 25000);
    ac.abort();
    const err = await p.catch((e) => e);
    assert.equal(err.name, 'AbortError');
    assert.equal(b.count('/connect'), 1);
    const reason = new Error('gone');
    await assert.rejects(sleep(10, AbortSignal.abort(reason)), (e) => e === reason);
    const ac2 = new AbortController();
    const long = sleep(60000, ac2.signal);
    ac2.abort(reason);
    await assert.rejects(long, (e) => e === reason);
  } finally {
    await b.close();
  }
});

test('the broker\'s error codes reach BrokerError with status, message and request id', async () => {
  const cases = [
    ['/public/token', 401, 'unauthorized'],
    ['/public/token', 403, 'origin_not_allowed'],
    ['/public/token', 404, 'unknown_agent'],
    ['/public/token', 400, 'invalid_request'],
    ['/public/token', 503, 'store_unavailable'],
    ['/connect', 501, 'livekit_not_configured'],
    ['/connect', 401, 'dpop_required'],
    ['/connect', 502, 'livekit_unavailable'],
    ['/connect', 403, 'origin_not_allowed'],
  ];
  const b = await fresh();
  try {
    for (const [path, status, code] of cases) {
      b.script(path, { status, headers: { 'X-Request-Id': 'rid-' + code }, body: { error: code, message: 'the broker says ' + code } });
      const err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).then(() => assert.fail(code), (e) => e);
      assert.ok(err instanceof BrokerError, code);
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'BrokerError');
      assert.equal(err.code, code);
      assert.equal(err.status, status);
      assert.equal(err.message, 'the broker says ' + code);
      assert.equal(err.requestId, 'rid-' + code);
      assertNoSecret(err, ticketsOf(b));
    }
  } finally {
    await b.close();
  }
});

test('answers outside the contract: HTML error page, garbage 2xx, huge body, refused connection, no answer', { timeout: 30000 }, async () => {
  const b = await fresh();
  try {
    b.script('/public/token', { status: 502, contentType: 'text/html', raw: '<html>Bad Gateway</html>' });
    let err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'http_error');
    assert.equal(err.status, 502);

    b.script('/public/token', { status: 201, raw: '[1,2]' });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'invalid_response');

    b.script('/public/token', { status: 201, body: { server: b.url } });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'invalid_response');

    b.script('/connect', { status: 201, body: { server_url: 'javascript:alert(1)', participant_token: 'x' } });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'invalid_response');

    b.script('/public/token', { status: 500, raw: JSON.stringify({ error: 'config_error', message: 'x'.repeat(100 * 1024) }) });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'http_error');
    assert.match(err.message, /too large/);

    b.script('/public/token', { hang: true });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, timeoutMs: 200 }).catch((e) => e);
    assert.equal(err.code, 'timeout');
    assertNoSecret(err);
  } finally {
    await b.close();
  }
  // The broker is gone: nothing listens on its port any more.
  const err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
  assert.equal(err.code, 'network_error');
  assert.equal(err.status, 0);
  assertNoSecret(err);
});

test('an abort ends a tokenProvider call that ignores the signal', { timeout: 10000 }, async () => {
  const ac = new AbortController();
  let called;
  const asked = new Promise((r) => (called = r));
  const p = fetchSession({ broker: broker.url, agent: 'florencia', signal: ac.signal, tokenProvider: () => { called(); return new Promise(() => {}); } });
  await asked;
  ac.abort();
  const err = await p.catch((e) => e);
  assert.equal(err.name, 'AbortError');
});

test('a redirect is never followed: the ticket and key do not travel to another host', async () => {
  const b = await fresh();
  const elsewhere = await fresh();
  try {
    b.script('/public/token', { status: 307, headers: { Location: elsewhere.url + '/public/token' }, body: {} });
    let err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'network_error');
    b.script('/connect', { status: 308, headers: { Location: elsewhere.url + '/connect' }, body: {} });
    err = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err.code, 'network_error');
    assert.equal(elsewhere.requests.length, 0);
    assertNoSecret(err, ticketsOf(b));
  } finally {
    await b.close();
    await elsewhere.close();
  }
});

test('a failing tokenProvider becomes token_provider_failed with the cause kept', async () => {
  const boom = new Error('backend down');
  let err = await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: async () => { throw boom; } }).catch((e) => e);
  assert.equal(err.code, 'token_provider_failed');
  assert.equal(err.cause, boom);
  err = await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: async () => ({ expiresIn: 60 }) }).catch((e) => e);
  assert.equal(err.code, 'token_provider_failed');
  err = await fetchSession({ agent: 'florencia', tokenProvider: async () => ({ token: 'eyJabc.def.ghi' }) }).catch((e) => e);
  assert.equal(err.code, 'invalid_response', 'no server and no broker: nowhere to trade the ticket');
  // A BrokerError thrown by the provider passes through as it is.
  const mine = new BrokerError('rate_limited', 'my backend is busy', { status: 429 });
  err = await fetchSession({ broker: broker.url, agent: 'florencia', tokenProvider: async () => { throw mine; } }).catch((e) => e);
  assert.equal(err, mine);
});

test('no ticket, key or LiveKit token in an error message, even when the broker echoes them', async () => {
  const b = await fresh();
  try {
    // A misbehaving broker (or proxy) that quotes what it was sent.
    let seen;
    const provider = async (req) => {
      const t = b.mint({ dpop_jkt: req.dpopJkt });
      seen = t.token;
      noteSecret(t.token);
      b.script('/connect', { status: 401, body: { error: 'token_invalid', message: `bad ticket ${t.token} for key ${b.sk} and ${b.pk}` } });
      return t;
    };
    const err = await fetchSession({ broker: b.url, agent: 'florencia', tokenProvider: provider }).catch((e) => e);
    assert.equal(err.code, 'token_invalid');
    assert.match(err.message, /\[redacted\]/);
    assertNoSecret(err, [seen, b.sk, b.pk]);

    b.script('/public/token', { status: 401, body: { error: 'unauthorized', message: 'unknown key ' + b.pk } });
    const err2 = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assertNoSecret(err2, [b.pk]);
    // A LiveKit-shaped token and an sk_ key not known to the library are caught by shape.
    const other = randomKey('sk_live_');
    assert.equal(redact(`x ${other} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc y`), 'x [redacted] [redacted] y');
  } finally {
    await b.close();
  }
});

test('options are checked before any request; messages never echo a key', async () => {
  const bad = [
    {},
    { broker: broker.url, agent: 'florencia' },
    { broker: broker.url, agent: 'florencia', publishableKey: broker.pk, tokenProvider: async () => 't' },
    { broker: broker.url, agent: 'Bad_Agent', publishableKey: broker.pk },
    { broker: broker.url, agent: 'florencia', channel: 'video', publishableKey: broker.pk },
    { broker: broker.url + '/?x=1', agent: 'florencia', publishableKey: broker.pk },
    { broker: 'ftp://b.example', agent: 'florencia', publishableKey: broker.pk },
    { broker: 'https://user:pass@b.example', agent: 'florencia', publishableKey: broker.pk },
    { agent: 'florencia', publishableKey: broker.pk },
    { broker: broker.url, agent: 'florencia', publishableKey: broker.sk },
  ];
  const before = broker.requests.length;
  for (const o of bad) {
    const err = await fetchSession(o).catch((e) => e);
    assert.ok(err instanceof TypeError, JSON.stringify(Object.keys(o)) + ': ' + err);
    assertNoSecret(err);
  }
  assert.equal(broker.requests.length, before);
});

test('parseRetryAfter reads seconds and HTTP dates', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('7', now), 7);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter('-5', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

test('no console line written during these tests carries a key, ticket or token', () => {
  checkConsole();
});
