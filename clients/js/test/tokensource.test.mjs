// createTokenSource(): livekit-client's own TokenSource.custom on the
// broker flow (fake broker on 127.0.0.1, see test/fake-broker.mjs). The
// TokenSource's caching is LiveKit's real code.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TokenSourceConfigurable, decodeTokenPayload } from 'livekit-client';
import { BrokerError, createDPoPKey, createTokenSource } from '../dist/index.js';
import { backendProvider, startFakeBroker } from './fake-broker.mjs';
import { assertNoSecret, checkConsole, guardConsole, noteSecret } from './helpers.mjs';

guardConsole();

let broker;
before(async () => {
  broker = await startFakeBroker();
  noteSecret(broker.sk, broker.pk);
});
after(() => broker.close());

test('a TokenSource that LiveKit helpers can use: fetch gives serverUrl and participantToken', async () => {
  const calls = [];
  const source = createTokenSource({ broker: broker.url, agent: 'florencia', tokenProvider: backendProvider(broker, calls) });
  assert.ok(source instanceof TokenSourceConfigurable);
  const before = broker.count('/connect');
  const res = await source.fetch({ agentName: 'florencia', participantName: 'Ana' });
  noteSecret(res.participantToken);
  assert.equal(res.serverUrl, 'wss://livekit.invalid');
  assert.match(decodeTokenPayload(res.participantToken).video.room, /^agent_florencia_/);
  assert.equal(broker.count('/connect'), before + 1);
  assert.deepEqual(calls[0].fetchOptions, { agentName: 'florencia', participantName: 'Ana' });
  assert.match(calls[0].dpopJkt, /^[A-Za-z0-9_-]{43}$/);

  // LiveKit's cache: same options, unexpired token: no new ticket.
  const again = await source.fetch({ agentName: 'florencia', participantName: 'Ana' });
  assert.equal(again.participantToken, res.participantToken);
  assert.equal(broker.count('/connect'), before + 1);
  assert.equal(calls.length, 1);

  // New options: a new ticket, bound to the same key (one key per source).
  const other = await source.fetch({ agentName: 'florencia', participantName: 'Bea' });
  noteSecret(other.participantToken);
  assert.notEqual(other.participantToken, res.participantToken);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].dpopJkt, calls[0].dpopJkt);
  assert.equal(broker.proofs.at(-1).jkt, calls[0].dpopJkt);
});

test('public mode TokenSource with a caller-supplied DPoP key', async () => {
  const key = await createDPoPKey();
  const source = createTokenSource({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk, dpop: key });
  const res = await source.fetch({});
  noteSecret(res.participantToken);
  const mint = broker.requests.filter((r) => r.path === '/public/token').at(-1);
  assert.equal(JSON.parse(mint.body).dpop_jkt, key.thumbprint);
  assert.equal(broker.proofs.at(-1).jkt, key.thumbprint);
});

test('a TokenSource fetch that the broker refuses rejects with BrokerError', async () => {
  broker.script('/public/token', { status: 403, body: { error: 'origin_not_allowed', message: 'this origin is not allowed' } });
  const source = createTokenSource({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk });
  const err = await source.fetch({}).catch((e) => e);
  assert.ok(err instanceof BrokerError);
  assert.equal(err.code, 'origin_not_allowed');
  assert.equal(err.status, 403);
  assertNoSecret(err);
  // The source recovers on the next fetch.
  const res = await source.fetch({});
  noteSecret(res.participantToken);
  assert.ok(res.participantToken);
});

test('createTokenSource checks its options at once', () => {
  assert.throws(() => createTokenSource({ broker: broker.url, agent: 'florencia' }), TypeError);
});

test('no console line written during these tests carries a key, ticket or token', () => {
  checkConsole();
});
