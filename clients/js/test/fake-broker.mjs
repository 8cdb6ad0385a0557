// A fake voicebroker on 127.0.0.1 for the library's UNIT tests only: it
// speaks the contract's wire format (POST /token, /public/token, /connect,
// errors as {"error","message"}) so the client's requests, retries and
// DPoP proofs can be checked byte for byte without Go, Redis or LiveKit.
// The real broker is exercised by the project's browser test.
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { verifyProof } from './verify-dpop.mjs';

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function jwt(payload, secret = 'fake-broker-signing-secret') {
  const input = b64u({ alg: 'HS256', typ: 'JWT' }) + '.' + b64u(payload);
  return input + '.' + createHmac('sha256', secret).update(input).digest('base64url');
}

/** randomKey is a key of the contract's shape: prefix plus 43 base62 characters. */
export function randomKey(prefix) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = prefix;
  for (const b of randomBytes(43)) s += alphabet[b % 62];
  return s;
}

/**
 * startFakeBroker listens on 127.0.0.1:0. opts.prefix: a path prefix the
 * broker is mounted under ('' or '/vb'). Returns an object with:
 *   url                 base URL (with the prefix)
 *   sk, pk              a secret and a publishable key it accepts
 *   requests            every request: {method, path, headers, body}
 *   script(path, ...r)  canned answers served before normal handling:
 *                       {status, body, headers, raw, hang}
 *   mint({dpop_jkt, expired})  mints a ticket directly (what a backend gets)
 *   consume(token)      marks a ticket used (as if someone else traded it)
 *   proofs              the DPoP proofs /connect verified: {jkt, claims}
 *   close()
 */
export async function startFakeBroker(opts = {}) {
  const prefix = opts.prefix ?? '';
  const sk = randomKey('sk_test_');
  const pk = randomKey('pk_test_');
  const tickets = new Map(); // token -> {used, exp, jkt, agent, channel}
  const jtis = new Set();
  const scripts = new Map();
  const requests = [];
  const proofs = [];
  const hanging = new Set();
  let base = '';

  const mint = ({ agent = 'florencia', channel = 'webrtc', dpop_jkt, expired = false } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const exp = expired ? now - 5 : now + 60;
    const claims = { iss: base, aud: 'voice-session', jti: randomBytes(16).toString('base64url'), iat: now, exp, org: 'acme', agent, channel };
    if (dpop_jkt) claims.cnf = { jkt: dpop_jkt };
    const token = jwt(claims);
    tickets.set(token, { used: false, exp, jkt: dpop_jkt, agent, channel });
    return { token, server: base, expiresIn: 60 };
  };

  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Request-Id': 'req-' + requests.length, ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const fail = (res, status, error, message, headers) => send(res, status, { error, message }, headers);
  const bearer = (req) => /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = req.url.startsWith(prefix) ? req.url.slice(prefix.length) : req.url;
      requests.push({ method: req.method, path, url: req.url, headers: req.headers, body: raw });
      const queue = scripts.get(path);
      if (queue && queue.length) {
        const s = queue.shift();
        if (s.hang) {
          // No answer; should the client never give up, the connection is
          // cut after 20 s, so a broken timeout fails the test, not the run.
          hanging.add(res);
          setTimeout(() => res.destroy(), 20000).unref();
          return;
        }
        res.writeHead(s.status, { 'Content-Type': s.contentType ?? 'application/json', ...(s.headers ?? {}) });
        res.end(s.raw ?? JSON.stringify(s.body ?? {}));
        return;
      }
      if (req.method !== 'POST') return fail(res, 404, 'not_found', 'no such route');
      let body = {};
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          return fail(res, 400, 'invalid_request', 'malformed JSON');
        }
      }
      const cred = bearer(req);
      if (path === '/token') {
        if (cred !== sk) return fail(res, 401, 'unauthorized', 'unknown credential');
        return send(res, 201, mint(body));
      }
      if (path === '/public/token') {
        if (!cred) return fail(res, 401, 'missing_auth_header', 'no credential');
        if (cred !== pk) return fail(res, 401, 'unauthorized', 'unknown credential');
        const keys = Object.keys(body).sort().join(',');
        if (keys !== 'agent,channel' && keys !== 'agent,channel,dpop_jkt') return fail(res, 400, 'invalid_request', 'unexpected fields ' + keys);
        return send(res, 201, mint(body));
      }
      if (path === '/connect') {
        const token = cred ?? body.token;
        if (!token) return fail(res, 401, 'missing_auth_header', 'no ticket');
        const t = tickets.get(token);
        if (!t) return fail(res, 401, 'token_invalid', 'bad ticket');
        if (t.exp <= Math.floor(Date.now() / 1000)) return fail(res, 401, 'token_expired', 'ticket expired');
        if (t.jkt) {
          const proof = req.headers.dpop;
          if (!proof) return fail(res, 401, 'dpop_required', 'this ticket needs a DPoP proof');
          let v;
          try {
            v = await verifyProof(proof, { htm: 'POST', htu: base + '/connect', accessToken: token });
          } catch (e) {
            return fail(res, 401, 'dpop_invalid', 'DPoP proof refused: ' + e.message);
          }
          if (v.jkt !== t.jkt) return fail(res, 401, 'dpop_invalid', 'proof key is not the ticket key');
          if (jtis.has(v.claims.jti)) return fail(res, 401, 'dpop_invalid', 'proof jti reused');
          jtis.add(v.claims.jti);
          proofs.push(v);
        }
        if (t.used) return fail(res, 401, 'token_used', 'ticket already used');
        t.used = true;
        const now = Math.floor(Date.now() / 1000);
        const room = 'agent_' + t.agent + '_' + now + '_' + randomBytes(6).toString('hex').slice(0, 12);
        const identity = 'user-' + randomBytes(4).toString('hex');
        const participant_token = jwt({ iss: 'APIfake', sub: identity, nbf: now - 1, exp: now + 300, video: { room, roomJoin: true, canPublish: t.channel === 'webrtc' } }, 'livekit-secret');
        return send(res, 201, { server_url: 'wss://livekit.invalid', participant_token, room_name: room, participant_identity: identity, expires_in: 300 });
      }
      return fail(res, 404, 'not_found', 'no such route');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  // A failed test that never reaches close() must not keep node alive.
  server.unref();
  base = `http://127.0.0.1:${server.address().port}${prefix}`;
  return {
    url: base,
    sk,
    pk,
    requests,
    proofs,
    mint,
    consume: (token) => {
      tickets.get(token).used = true;
    },
    script: (path, ...answers) => {
      scripts.set(path, [...(scripts.get(path) ?? []), ...answers]);
    },
    count: (path) => requests.filter((r) => r.path === path).length,
    close: async () => {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * backendProvider is a tokenProvider as an application would write it,
 * with the application's backend folded in: it calls the broker's
 * POST /token with the secret key and forwards dpopJkt as dpop_jkt.
 */
export function backendProvider(broker, calls = []) {
  return async (req) => {
    calls.push(req);
    const body = { agent: req.agent, channel: req.channel };
    if (req.dpopJkt) body.dpop_jkt = req.dpopJkt;
    const res = await fetch(broker.url + '/token', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + broker.sk, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error('backend: ' + res.status);
    return res.json();
  };
}
