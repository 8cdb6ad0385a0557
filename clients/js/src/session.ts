import { createDPoPKey, type DPoPKey } from './dpop.js';
import { BrokerError } from './errors.js';
import { postJSON, withRateLimitRetry, type HttpContext, type RetryOptions } from './http.js';

/** The channel a ticket is for: `webrtc` publishes audio, `chat` only subscribes and sends data. */
export type Channel = 'webrtc' | 'chat';

/**
 * What {@link TokenProvider} is asked for. A provider written for
 * Pinecall's widget (`async () => (await fetch('/api/token')).json()`)
 * may ignore it; one that wants sender-constrained tickets passes
 * `dpopJkt` to its backend, which sends it as `dpop_jkt` in
 * `POST /token`.
 */
export interface TicketRequest {
  agent: string;
  channel: Channel;
  /**
   * RFC 7638 thumbprint (base64url, 43 characters) of this browser's DPoP
   * key; absent when DPoP is off. Not a secret: it names a public key.
   */
  dpopJkt?: string;
  /** 1 for the first ticket of a connect, 2 after `/connect` refused the first as used or expired. */
  attempt: number;
  /** The caller's AbortSignal, to pass on to fetch. */
  signal?: AbortSignal;
  /** When called through a LiveKit TokenSource: the options LiveKit passed to `fetch`. */
  fetchOptions?: Record<string, unknown>;
}

/** A single-use ticket as the broker's `POST /token` returns it. */
export interface Ticket {
  /** The single-use ticket. */
  token: string;
  /** Where to trade it (`{server}/connect`); default the `broker` option. */
  server?: string;
  /** Seconds the ticket lives. */
  expiresIn?: number;
}

/**
 * TokenProvider fetches a ticket from the application's own backend, which
 * calls the broker's `POST /token` with its secret key (Pinecall's
 * tokenProvider model). It may return the ticket's JSON as the broker
 * sent it, or just the token string.
 */
export type TokenProvider = (request: TicketRequest) => Promise<Ticket | string> | Ticket | string;

/** Options shared by {@link fetchSession}, `connect` and `createTokenSource`. */
export interface SessionOptions {
  /**
   * The broker's base URL (`https://broker.example.com`, or with a path
   * prefix). Required for `publishableKey`; with a `tokenProvider` it is
   * where tickets without a `server` are traded.
   */
  broker?: string;
  /** The broker's agent id. */
  agent: string;
  /** Default `webrtc`. */
  channel?: Channel;
  /** Backend model: the application's backend mints tickets. Exclusive with `publishableKey`. */
  tokenProvider?: TokenProvider;
  /**
   * Public mode: the agent's publishable key (`pk_live_...`), sent to
   * `POST {broker}/public/token`; the browser adds the page's Origin.
   */
  publishableKey?: string;
  /**
   * Sender-constrained tickets (default true): a non-extractable ES256 key
   * is made and its thumbprint sent at mint, and `/connect` gets a DPoP
   * proof. Pass a {@link DPoPKey} to reuse one, or false for brokers that
   * do not support DPoP.
   */
  dpop?: boolean | DPoPKey;
  /** Aborts every request and wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Per request, in milliseconds. Default 15000. */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch;
}

/** What `/connect` answers: everything needed to join the LiveKit room. */
export interface Session {
  serverUrl: string;
  participantToken: string;
  roomName: string;
  participantIdentity: string;
  /** Seconds the LiveKit token lives. */
  expiresIn: number;
}

const MAX_TOKEN_LENGTH = 8192;
const AGENT = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** brokerBase validates a broker or server URL and returns it without trailing slashes. */
export function brokerBase(value: string, what: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new TypeError(`${what} is not an absolute URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`${what} must be an http(s) URL`);
  if (u.username || u.password) throw new TypeError(`${what} must not carry credentials`);
  if (u.search || u.hash) throw new TypeError(`${what} must not have a query or fragment`);
  return (u.origin + u.pathname).replace(/\/+$/, '');
}

/** validate checks options once, before any request; mistakes are TypeErrors. */
export function validate(o: SessionOptions): void {
  if (!o || typeof o !== 'object') throw new TypeError('options are required');
  if (typeof o.agent !== 'string' || !AGENT.test(o.agent)) throw new TypeError('agent must be a broker agent id ([a-z0-9][a-z0-9-]{0,62})');
  if (o.channel !== undefined && o.channel !== 'webrtc' && o.channel !== 'chat') throw new TypeError('channel must be "webrtc" or "chat"');
  const modes = (o.tokenProvider ? 1 : 0) + (o.publishableKey ? 1 : 0);
  if (modes !== 1) throw new TypeError('pass exactly one of tokenProvider and publishableKey');
  if (o.tokenProvider && typeof o.tokenProvider !== 'function') throw new TypeError('tokenProvider must be a function');
  if (o.publishableKey !== undefined) {
    if (typeof o.publishableKey !== 'string' || !/^pk_(live|test)_[A-Za-z0-9]+$/.test(o.publishableKey)) {
      // Never echo the value: it might be a secret key pasted by mistake.
      throw new TypeError('publishableKey must be a pk_live_ or pk_test_ key');
    }
    if (!o.broker) throw new TypeError('broker is required with publishableKey');
  }
  if (o.broker !== undefined) brokerBase(o.broker, 'broker');
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) throw new TypeError('timeoutMs must be positive');
}

/** context builds the per-call HTTP context from the options. */
export function context(o: SessionOptions, secrets: string[]): HttpContext {
  const f = o.fetch ?? globalThis.fetch;
  if (typeof f !== 'function') throw new TypeError('no fetch: pass options.fetch');
  const r = o.retry ?? {};
  return {
    fetch: f.bind(globalThis),
    signal: o.signal,
    timeoutMs: o.timeoutMs ?? 15000,
    retry: {
      rateLimitRetries: nonNegative(r.rateLimitRetries, 3, 'retry.rateLimitRetries'),
      maxRetryAfter: nonNegative(r.maxRetryAfter, 30, 'retry.maxRetryAfter'),
      remints: nonNegative(r.remints, 1, 'retry.remints'),
      sleep: r.sleep,
    },
    secrets,
  };
}

function nonNegative(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a non-negative number`);
  return Math.floor(v);
}

/**
 * resolveKey returns the DPoP key to use: the one passed, a new one, or
 * null when DPoP is off.
 */
export async function resolveKey(dpop: SessionOptions['dpop']): Promise<DPoPKey | null> {
  if (dpop === false) return null;
  if (dpop && dpop !== true) return dpop;
  return createDPoPKey();
}

async function mint(o: SessionOptions, ctx: HttpContext, key: DPoPKey | null, attempt: number, fetchOptions?: Record<string, unknown>): Promise<Ticket> {
  const channel = o.channel ?? 'webrtc';
  if (o.publishableKey) {
    const body: Record<string, string> = { agent: o.agent, channel };
    if (key) body.dpop_jkt = key.thumbprint;
    const url = brokerBase(o.broker!, 'broker') + '/public/token';
    const data = await withRateLimitRetry(ctx, () =>
      postJSON(ctx, url, { Authorization: 'Bearer ' + o.publishableKey, Accept: 'application/json' }, body),
    );
    return ticketFrom(data, 'invalid_response');
  }
  let got: Ticket | string;
  try {
    const req: TicketRequest = { agent: o.agent, channel, attempt };
    if (key) req.dpopJkt = key.thumbprint;
    if (o.signal) req.signal = o.signal;
    if (fetchOptions) req.fetchOptions = fetchOptions;
    got = await abortable(Promise.resolve(o.tokenProvider!(req)), o.signal);
  } catch (e) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (e instanceof BrokerError) throw e;
    throw new BrokerError('token_provider_failed', 'the tokenProvider threw', { cause: e });
  }
  return ticketFrom(typeof got === 'string' ? { token: got } : got, 'token_provider_failed');
}

/**
 * abortable settles like p, or rejects with signal.reason as soon as the
 * signal aborts, for callees (a tokenProvider, room.connect) that may
 * ignore the signal.
 */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function ticketFrom(data: unknown, code: 'invalid_response' | 'token_provider_failed'): Ticket {
  const d = data as Partial<Ticket> | null | undefined;
  if (!d || typeof d !== 'object' || typeof d.token !== 'string' || d.token === '' || d.token.length > MAX_TOKEN_LENGTH) {
    throw new BrokerError(code, code === 'invalid_response' ? 'the broker\'s answer has no token' : 'the tokenProvider returned no token');
  }
  if (d.server !== undefined && d.server !== null && typeof d.server !== 'string') {
    throw new BrokerError(code, 'the ticket\'s server is not a string');
  }
  const t: Ticket = { token: d.token };
  if (d.server) t.server = d.server;
  if (typeof d.expiresIn === 'number') t.expiresIn = d.expiresIn;
  return t;
}

async function trade(o: SessionOptions, ctx: HttpContext, key: DPoPKey | null, ticket: Ticket): Promise<Session> {
  let base: string;
  try {
    base = brokerBase(ticket.server ?? o.broker ?? '', 'the ticket\'s server');
  } catch (e) {
    throw new BrokerError('invalid_response', ticket.server ? 'the ticket\'s server is not an http(s) URL' : 'the ticket names no server and no broker option was given', {
      cause: e,
    });
  }
  const url = base + '/connect';
  const data = await withRateLimitRetry(ctx, async () => {
    const headers: Record<string, string> = { Authorization: 'Bearer ' + ticket.token, Accept: 'application/json' };
    // A fresh proof (new jti, current iat) for every try.
    if (key) headers.DPoP = await key.proof('POST', url, ticket.token);
    return postJSON(ctx, url, headers);
  });
  const s = data as Record<string, unknown>;
  if (typeof s.server_url !== 'string' || !/^(wss?|https?):\/\//i.test(s.server_url) || typeof s.participant_token !== 'string' || s.participant_token === '') {
    throw new BrokerError('invalid_response', 'the broker\'s /connect answer lacks server_url or participant_token');
  }
  ctx.secrets.push(s.participant_token);
  return {
    serverUrl: s.server_url,
    participantToken: s.participant_token,
    roomName: typeof s.room_name === 'string' ? s.room_name : '',
    participantIdentity: typeof s.participant_identity === 'string' ? s.participant_identity : '',
    expiresIn: typeof s.expires_in === 'number' ? s.expires_in : 0,
  };
}

/** @internal fetchSession with a key and extra LiveKit options already resolved. */
export async function runSession(o: SessionOptions, key: DPoPKey | null, fetchOptions?: Record<string, unknown>): Promise<Session> {
  const secrets: string[] = [];
  if (o.publishableKey) secrets.push(o.publishableKey);
  const ctx = context(o, secrets);
  for (let attempt = 1; ; attempt++) {
    const ticket = await mint(o, ctx, key, attempt, fetchOptions);
    secrets.push(ticket.token);
    try {
      return await trade(o, ctx, key, ticket);
    } catch (e) {
      const stale = e instanceof BrokerError && (e.code === 'token_expired' || e.code === 'token_used');
      if (!stale || attempt > ctx.retry.remints) throw e;
    }
  }
}

/**
 * fetchSession gets a ticket (from the tokenProvider or `/public/token`)
 * and trades it once at `{server}/connect` for a LiveKit token, without
 * joining the room. A ticket refused as `token_expired` or `token_used` is
 * replaced by a fresh one (`retry.remints` times, default once); 429s are
 * retried as `Retry-After` says. Rejects with a BrokerError, a TypeError
 * for bad options, or the signal's reason when aborted.
 */
export async function fetchSession(options: SessionOptions): Promise<Session> {
  validate(options);
  const key = await resolveKey(options.dpop);
  return runSession(options, key);
}
