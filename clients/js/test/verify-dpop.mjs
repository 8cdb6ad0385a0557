// An independent DPoP proof verifier for the tests (RFC 9449 §4.3), written
// without the library's code: node:crypto for the signature and the
// RFC 7638 thumbprint, WebCrypto as a second signature check.
import { createHash, createPublicKey, verify as nodeVerify, webcrypto } from 'node:crypto';

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const fromB64u = (s) => Buffer.from(s, 'base64url');

/** thumbprint is RFC 7638's SHA-256 JWK thumbprint of an EC public key. */
export function thumbprint(jwk) {
  const canon = `{"crv":${JSON.stringify(jwk.crv)},"kty":${JSON.stringify(jwk.kty)},"x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
  return b64u(createHash('sha256').update(canon).digest());
}

/**
 * verifyProof checks a DPoP proof and returns {header, claims, jkt}, or
 * throws an Error naming what is wrong. want: {htm, htu, now?, maxSkew?,
 * accessToken?}.
 */
export async function verifyProof(proof, want) {
  if (typeof proof !== 'string') throw new Error('no proof');
  const parts = proof.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  const header = JSON.parse(fromB64u(parts[0]).toString('utf8'));
  const claims = JSON.parse(fromB64u(parts[1]).toString('utf8'));
  if (header.typ !== 'dpop+jwt') throw new Error('typ');
  if (header.alg !== 'ES256') throw new Error('alg');
  const jwk = header.jwk;
  if (!jwk || jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('jwk');
  if ('d' in jwk) throw new Error('private key in header');
  if (Object.keys(jwk).sort().join(',') !== 'crv,kty,x,y') throw new Error('jwk members: ' + Object.keys(jwk));
  const sig = fromB64u(parts[2]);
  if (sig.length !== 64) throw new Error('signature is not r||s');
  const input = Buffer.from(parts[0] + '.' + parts[1]);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  if (!nodeVerify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('signature (node:crypto)');
  const wk = await webcrypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  if (!(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, wk, sig, input))) throw new Error('signature (WebCrypto)');
  if (typeof claims.jti !== 'string' || fromB64u(claims.jti).length < 12) throw new Error('jti under 96 bits');
  if (claims.htm !== want.htm) throw new Error('htm');
  if (claims.htu !== want.htu) throw new Error(`htu ${claims.htu} != ${want.htu}`);
  const now = want.now ?? Math.floor(Date.now() / 1000);
  if (!Number.isInteger(claims.iat) || Math.abs(claims.iat - now) > (want.maxSkew ?? 60)) throw new Error('iat');
  if (want.accessToken !== undefined && claims.ath !== b64u(createHash('sha256').update(want.accessToken).digest())) throw new Error('ath');
  return { header, claims, jkt: thumbprint(jwk) };
}
