// connect(): the ticket flow (fake broker on 127.0.0.1, see
// test/fake-broker.mjs) handing its answer to livekit-client's real Room.
// Node has no WebRTC, so joining a real LiveKit room is the browser test's
// job; here the success path records what Room.connect was given (the
// instance's connect is replaced), and the failure path runs the real,
// unmodified Room.connect, which cannot work in Node.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Room } from 'livekit-client';
import { BrokerError, connect } from '../dist/index.js';
import { backendProvider, startFakeBroker } from './fake-broker.mjs';
import { assertNoSecret, checkConsole, guardConsole, noteSecret } from './helpers.mjs';

guardConsole();

let broker;
before(async () => {
  broker = await startFakeBroker();
  noteSecret(broker.sk, broker.pk);
});
after(() => broker.close());

/** recordingRoom is a real Room whose connect records its arguments. */
function recordingRoom(impl = async () => {}) {
  const room = new Room();
  const calls = [];
  let disconnects = 0;
  room.connect = async (...args) => {
    calls.push(args);
    return impl(...args);
  };
  const realDisconnect = room.disconnect;
  room.disconnect = async (...args) => {
    disconnects++;
    return realDisconnect.apply(room, args);
  };
  return { room, calls, disconnects: () => disconnects };
}

test('connect (public mode) joins the given Room with the LiveKit URL and token from /connect', async () => {
  const { room, calls } = recordingRoom();
  const connectOptions = { autoSubscribe: true, maxRetries: 2 };
  const got = await connect({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk, room, connectOptions });
  assert.equal(got, room);
  assert.ok(got instanceof Room);
  assert.equal(calls.length, 1);
  const [url, token, opts] = calls[0];
  noteSecret(token);
  assert.equal(url, 'wss://livekit.invalid');
  assert.match(token, /^eyJ/);
  assert.equal(opts, connectOptions);
});

test('connect (backend mode) with a tokenProvider', async () => {
  const { room, calls } = recordingRoom();
  const provided = [];
  await connect({ broker: broker.url, agent: 'florencia', channel: 'chat', tokenProvider: backendProvider(broker, provided), room });
  assert.equal(provided[0].channel, 'chat');
  assert.equal(calls.length, 1);
  noteSecret(calls[0][1]);
  assert.equal(JSON.parse(Buffer.from(calls[0][1].split('.')[1], 'base64url')).video.canPublish, false);
});

test('a Room that cannot join becomes livekit_connect_failed, without the LiveKit token in it', async () => {
  // No room passed: connect builds a real Room, whose real connect fails in
  // Node (no browser APIs). The same path handles a LiveKit server that is down.
  let err = await connect({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk, roomOptions: { adaptiveStream: false } }).catch((e) => e);
  assert.ok(err instanceof BrokerError, String(err));
  assert.equal(err.code, 'livekit_connect_failed');
  assert.match(err.message, /^could not join the LiveKit room/);
  assert.ok(err.cause);
  assertNoSecret(err);

  // A livekit error whose message quotes the token (as a signalling URL
  // with ?access_token= would) is redacted.
  let token;
  const { room, disconnects } = recordingRoom(async (url, t) => {
    token = t;
    noteSecret(t);
    throw new Error(`could not establish signal connection to ${url}/rtc?access_token=${t}`);
  });
  err = await connect({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk, room }).catch((e) => e);
  assert.equal(err.code, 'livekit_connect_failed');
  assert.match(err.message, /access_token=\[redacted\]/);
  assert.ok(!err.message.includes(token));
  assert.equal(disconnects(), 1, 'a failed join is cleaned up');
});

test('aborting while the Room joins disconnects it and rejects with the signal\'s reason', { timeout: 10000 }, async () => {
  const ac = new AbortController();
  let joining;
  const started = new Promise((r) => (joining = r));
  const { room, disconnects } = recordingRoom((_, t) => {
    noteSecret(t);
    joining();
    return new Promise(() => {}); // a join that never finishes
  });
  const p = connect({ broker: broker.url, agent: 'florencia', publishableKey: broker.pk, room, signal: ac.signal });
  await started;
  ac.abort();
  const err = await p.catch((e) => e);
  assert.equal(err.name, 'AbortError');
  assert.equal(disconnects(), 1);
});

test('bad options are a TypeError before any request', async () => {
  const n = broker.requests.length;
  await assert.rejects(connect({ broker: broker.url, agent: 'florencia' }), TypeError);
  assert.equal(broker.requests.length, n);
});

test('no console line written during these tests carries a key, ticket or token', () => {
  checkConsole();
});
