// DPoP key and proofs (contract §6, RFC 9449), checked by an independent
// verifier (test/verify-dpop.mjs: node:crypto and its own thumbprint code).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { BrokerError, createDPoPKey, fetchSession, htuOf, jwkThumbprint } from '../dist/index.js';
import { startFakeBroker } from './fake-broker.mjs';
import { thumbprint, verifyProof } from './verify-dpop.mjs';

// RFC 9449 figures 2 and 9: the example proof's public key and the jkt the
// RFC publishes for it.
const RFC9449_JWK = { kty: 'EC', crv: 'P-256', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA' };
const RFC9449_JKT = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';

test('jwkThumbprint matches the thumbprint RFC 9449 publishes for its example key', async () => {
  assert.equal(await jwkThumbprint(RFC9449_JWK), RFC9449_JKT);
  // Member order and extra members (use, key_ops, kid) must not change it.
  assert.equal(await jwkThumbprint({ y: RFC9449_JWK.y, x: RFC9449_JWK.x, kid: 'k1', use: 'sig', crv: 'P-256', kty: 'EC' }), RFC9449_JKT);
  assert.equal(thumbprint(RFC9449_JWK), RFC9449_JKT, 'the independent verifier agrees');
});

test('jwkThumbprint refuses keys it cannot hash', async () => {
  await assert.rejects(jwkThumbprint({ kty: 'oct', k: 'abc' }), TypeError);
  await assert.rejects(jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'a' }), TypeError);
});

test('createDPoPKey makes a non-extractable P-256 key with a 43-character thumbprint', async () => {
  const key = await createDPoPKey();
  assert.equal(key.privateKey.extractable, false);
  assert.equal(key.privateKey.type, 'private');
  assert.deepEqual(key.privateKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
  await assert.rejects(crypto.subtle.exportKey('jwk', key.privateKey), 'the private key must not be exportable');
  await assert.rejects(crypto.subtle.exportKey('pkcs8', key.privateKey));
  assert.deepEqual(Object.keys(key.publicJwk).sort(), ['crv', 'kty', 'x', 'y']);
  assert.match(key.thumbprint, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(key.thumbprint, thumbprint(key.publicJwk));
  const other = await createDPoPKey();
  assert.notEqual(other.thumbprint, key.thumbprint);
});

test('a proof verifies independently and carries the RFC 9449 claims', async () => {
  const key = await createDPoPKey();
  const ticket = 'eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln';
  const before = Math.floor(Date.now() / 1000);
  const proof = await key.proof('POST', 'https://broker.example.com/vb/connect?x=1#frag', ticket);
  const v = await verifyProof(proof, { htm: 'POST', htu: 'https://broker.example.com/vb/connect', accessToken: ticket });
  assert.deepEqual(Object.keys(v.header).sort(), ['alg', 'jwk', 'typ']);
  assert.deepEqual(Object.keys(v.claims).sort(), ['ath', 'htm', 'htu', 'iat', 'jti']);
  assert.equal(v.jkt, key.thumbprint);
  assert.ok(v.claims.iat >= before && v.claims.iat <= Math.floor(Date.now() / 1000));
  assert.equal(Buffer.from(v.claims.jti, 'base64url').length, 16);
  assert.equal(v.claims.ath, createHash('sha256').update(ticket).digest('base64url'));
});

test('every proof has its own jti', async () => {
  const key = await createDPoPKey();
  const jtis = new Set();
  for (let i = 0; i < 200; i++) {
    const p = await key.proof('POST', 'https://b.example/connect');
    jtis.add(JSON.parse(Buffer.from(p.split('.')[1], 'base64url')).jti);
  }
  assert.equal(jtis.size, 200);
});

test('the verifier refuses a tampered proof, a proof for another URL or method', async () => {
  const key = await createDPoPKey();
  const proof = await key.proof('POST', 'https://b.example/connect');
  const [h, , s] = proof.split('.');
  const forged = h + '.' + Buffer.from(JSON.stringify({ jti: 'AAAAAAAAAAAAAAAA', htm: 'POST', htu: 'https://b.example/connect', iat: Math.floor(Date.now() / 1000) })).toString('base64url') + '.' + s;
  await assert.rejects(verifyProof(forged, { htm: 'POST', htu: 'https://b.example/connect' }), /signature/);
  await assert.rejects(verifyProof(proof, { htm: 'POST', htu: 'https://evil.example/connect' }), /htu/);
  await assert.rejects(verifyProof(proof, { htm: 'GET', htu: 'https://b.example/connect' }), /htm/);
  await assert.rejects(verifyProof(proof, { htm: 'POST', htu: 'https://b.example/connect', now: Math.floor(Date.now() / 1000) + 120 }), /iat/);
  // A proof by another key whose header names this key's JWK fails too.
  const other = await createDPoPKey();
  const theirs = (await other.proof('POST', 'https://b.example/connect')).split('.');
  await assert.rejects(verifyProof(h + '.' + theirs[1] + '.' + theirs[2], { htm: 'POST', htu: 'https://b.example/connect' }), /signature/);
});

test('a stored key comes back with the same thumbprint; a mismatched pair is refused', async () => {
  const key = await createDPoPKey();
  const again = await createDPoPKey({ privateKey: key.privateKey, publicJwk: key.publicJwk });
  assert.equal(again.thumbprint, key.thumbprint);
  await verifyProof(await again.proof('POST', 'https://b.example/connect'), { htm: 'POST', htu: 'https://b.example/connect' });
  const other = await createDPoPKey();
  await assert.rejects(createDPoPKey({ privateKey: key.privateKey, publicJwk: other.publicJwk }), /not the public half/);
});

test('htuOf drops query and fragment and keeps the path', () => {
  assert.equal(htuOf('https://b.example:8443/p/connect?a=1#x'), 'https://b.example:8443/p/connect');
  assert.equal(htuOf('HTTPS://B.Example/connect'), 'https://b.example/connect');
});

test('without WebCrypto (not a secure context): dpop_unavailable, and dpop: false still works', async () => {
  const b = await startFakeBroker();
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true });
  try {
    const err = await createDPoPKey().catch((e) => e);
    assert.ok(err instanceof BrokerError);
    assert.equal(err.code, 'dpop_unavailable');
    const err2 = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk }).catch((e) => e);
    assert.equal(err2.code, 'dpop_unavailable');
    assert.equal(b.requests.length, 0, 'nothing is sent unbound when binding was asked for');
    const s = await fetchSession({ broker: b.url, agent: 'florencia', publishableKey: b.pk, dpop: false });
    assert.ok(s.participantToken);
  } finally {
    Object.defineProperty(globalThis, 'crypto', saved);
    await b.close();
  }
  assert.ok(globalThis.crypto.subtle);
});
