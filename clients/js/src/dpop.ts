import { BrokerError } from './errors.js';

/** The public half of a P-256 key as a JWK, with only the members RFC 7638 hashes. */
export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/**
 * DPoPKey is a non-extractable ES256 key pair that binds tickets to this
 * browser (contract §6, after RFC 9449): the broker puts the key's
 * thumbprint in the ticket as `cnf.jkt`, and `/connect` then wants a proof
 * signed with the private key, which cannot be read out of WebCrypto.
 */
export interface DPoPKey {
  /** RFC 7638 SHA-256 thumbprint of {@link publicJwk}, base64url (43 characters): the `dpop_jkt`. */
  readonly thumbprint: string;
  /** The public key; what every proof carries in its header. */
  readonly publicJwk: Readonly<PublicJwk>;
  /**
   * The private key: `extractable` is false, so it can sign but never be
   * exported. It can be stored in IndexedDB (structured clone) to keep one
   * key across page loads; {@link createDPoPKey} accepts it back.
   */
  readonly privateKey: CryptoKey;
  /**
   * proof signs a fresh DPoP proof JWT for one request: header
   * `{typ:"dpop+jwt", alg:"ES256", jwk}`, claims `{jti, htm, htu, iat}` plus
   * `ath` (the SHA-256 of `accessToken`) when one is given. `htu` is `url`
   * without its query and fragment; `jti` is 128 random bits.
   */
  proof(htm: string, url: string, accessToken?: string): Promise<string>;
}

function subtle(): SubtleCrypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c || !c.subtle || typeof c.getRandomValues !== 'function') {
    throw new BrokerError('dpop_unavailable');
  }
  return c.subtle;
}

/** base64url without padding, of bytes. */
export function base64url(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = '';
  for (let i = 0; i < b.length; i++) bin += String.fromCharCode(b[i]!);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64urlJSON(value: unknown): string {
  return base64url(new TextEncoder().encode(JSON.stringify(value)));
}

async function sha256(text: string): Promise<string> {
  return base64url(await subtle().digest('SHA-256', new TextEncoder().encode(text)));
}

/**
 * jwkThumbprint computes the RFC 7638 SHA-256 thumbprint (base64url) of an
 * EC, RSA or OKP public JWK: the required members only, in lexicographic
 * order, no whitespace.
 */
export async function jwkThumbprint(jwk: { kty?: string; [k: string]: unknown }): Promise<string> {
  let members: string[];
  switch (jwk.kty) {
    case 'EC':
      members = ['crv', 'kty', 'x', 'y'];
      break;
    case 'RSA':
      members = ['e', 'kty', 'n'];
      break;
    case 'OKP':
      members = ['crv', 'kty', 'x'];
      break;
    default:
      throw new TypeError('jwkThumbprint: unsupported kty');
  }
  const canon: Record<string, string> = {};
  for (const m of members) {
    const v = jwk[m];
    if (typeof v !== 'string' || v === '') throw new TypeError(`jwkThumbprint: member ${m} missing`);
    canon[m] = v;
  }
  // JSON.stringify keeps insertion order, which is the sorted order above.
  return sha256(JSON.stringify(canon));
}

/**
 * htuOf is what a proof's `htu` claim holds for url: scheme, host, port
 * and path, without query or fragment (RFC 9449 §4.2).
 */
export function htuOf(url: string): string {
  const u = new URL(url);
  return u.origin + u.pathname;
}

/**
 * createDPoPKey makes a new ES256 (ECDSA P-256) key pair whose private
 * key is non-extractable, or wraps a stored one (`privateKey` with the
 * matching `publicJwk`). It throws BrokerError `dpop_unavailable` where
 * WebCrypto is missing (pages that are not a secure context).
 */
export async function createDPoPKey(stored?: { privateKey: CryptoKey; publicJwk: PublicJwk }): Promise<DPoPKey> {
  const s = subtle();
  let privateKey: CryptoKey;
  let publicJwk: PublicJwk;
  if (stored) {
    const a = stored.privateKey.algorithm as EcKeyAlgorithm;
    if (stored.privateKey.type !== 'private' || a.name !== 'ECDSA' || a.namedCurve !== 'P-256') {
      throw new TypeError('createDPoPKey: privateKey must be an ECDSA P-256 private key');
    }
    privateKey = stored.privateKey;
    publicJwk = pickPublic(stored.publicJwk);
    // A mismatched pair would only show up as dpop_invalid at /connect.
    const probe = new TextEncoder().encode('voicebroker dpop key check');
    const pub = await s.importKey('jwk', publicJwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const sig = await s.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, probe);
    if (!(await s.verify({ name: 'ECDSA', hash: 'SHA-256' }, pub, sig, probe))) {
      throw new TypeError('createDPoPKey: publicJwk is not the public half of privateKey');
    }
  } else {
    const pair = (await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    privateKey = pair.privateKey;
    publicJwk = pickPublic((await s.exportKey('jwk', pair.publicKey)) as JsonWebKey);
  }
  const thumbprint = await jwkThumbprint(publicJwk as unknown as Record<string, string>);
  const header = base64urlJSON({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk });
  return Object.freeze({
    thumbprint,
    publicJwk: Object.freeze({ ...publicJwk }),
    privateKey,
    async proof(htm: string, url: string, accessToken?: string): Promise<string> {
      const claims: Record<string, string | number> = {
        jti: base64url(crypto.getRandomValues(new Uint8Array(16))),
        htm,
        htu: htuOf(url),
        iat: Math.floor(Date.now() / 1000),
      };
      if (accessToken !== undefined) claims.ath = await sha256(accessToken);
      const input = header + '.' + base64urlJSON(claims);
      // WebCrypto's ECDSA signature is already r||s (64 bytes), the JWS form.
      const sig = await s.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, new TextEncoder().encode(input));
      return input + '.' + base64url(sig);
    },
  });
}

function pickPublic(jwk: JsonWebKey | PublicJwk): PublicJwk {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new TypeError('createDPoPKey: publicJwk must be an EC P-256 public JWK');
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}
