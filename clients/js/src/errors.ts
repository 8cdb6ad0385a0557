/**
 * Error codes the broker answers with (contract §5), plus the codes this
 * library uses for failures that never reached the broker or came back in a
 * form the contract does not describe.
 */
export type BrokerErrorCode =
  // The broker's codes (its JSON body {"error","message"}).
  | 'invalid_request'
  | 'invalid_room_name'
  | 'missing_auth_header'
  | 'invalid_auth_header'
  | 'unauthorized'
  | 'token_invalid'
  | 'token_expired'
  | 'token_used'
  | 'insufficient_scope'
  | 'ip_not_allowed'
  | 'origin_not_allowed'
  | 'dpop_required'
  | 'dpop_invalid'
  | 'not_found'
  | 'conflict'
  | 'registry_read_only'
  | 'room_forbidden'
  | 'unknown_agent'
  | 'room_not_found'
  | 'payload_too_large'
  | 'rate_limited'
  | 'config_error'
  | 'jwt_signing_error'
  | 'livekit_not_configured'
  | 'auth_service_error'
  | 'livekit_unavailable'
  | 'store_unavailable'
  | 'registry_unavailable'
  | 'auth_service_unavailable'
  // This library's own codes (status 0 unless an HTTP answer was read).
  /** fetch failed: the broker is unreachable, or the browser refused the CORS answer. */
  | 'network_error'
  /** A request to the broker took longer than `timeoutMs`. */
  | 'timeout'
  /** An HTTP answer that is not the contract's JSON (a proxy's HTML error page, say). */
  | 'http_error'
  /** A 2xx answer without the fields the contract promises. */
  | 'invalid_response'
  /** The tokenProvider threw, or returned something without a `token`. */
  | 'token_provider_failed'
  /** WebCrypto (crypto.subtle) is missing: not a secure context. Use https, or `dpop: false`. */
  | 'dpop_unavailable'
  /** The broker's ticket was good but livekit-client could not join the room. */
  | 'livekit_connect_failed';

/** Extra facts a {@link BrokerError} carries. */
export interface BrokerErrorDetails {
  /** The HTTP status; 0 when no HTTP answer was read. */
  status?: number;
  /** Seconds from the broker's `Retry-After` header (429 answers). */
  retryAfter?: number;
  /** The broker's `X-Request-Id`, to quote in a support request. */
  requestId?: string;
  /** The underlying error (a fetch TypeError, a livekit-client error, ...). */
  cause?: unknown;
}

const DEFAULT_MESSAGES: Partial<Record<string, string>> = {
  network_error: 'the broker could not be reached (network failure, or it refused this page\'s origin)',
  timeout: 'the broker did not answer in time',
  http_error: 'the broker answered with an unexpected HTTP error',
  invalid_response: 'the broker answered without the fields the contract promises',
  token_provider_failed: 'the tokenProvider did not return a ticket',
  dpop_unavailable: 'WebCrypto is unavailable (not a secure context): serve the page over https or pass dpop: false',
  livekit_connect_failed: 'could not join the LiveKit room',
  rate_limited: 'too many requests; retry after the time in Retry-After',
};

/**
 * BrokerError is every failure of this library that is not a programming
 * mistake (those are TypeErrors) or an abort (the AbortSignal's reason is
 * rethrown as it is).
 *
 * `code` is the broker's contract code (`token_used`, `rate_limited`, ...)
 * or one of this library's own codes (`network_error`, `timeout`, ...).
 * The message never contains a ticket, a key or a LiveKit token: whatever
 * the broker or livekit-client said is passed through {@link redact} first.
 */
export class BrokerError extends Error {
  /** The contract's error code, or one of this library's codes. */
  readonly code: BrokerErrorCode | (string & {});
  /** The HTTP status; 0 when no HTTP answer was read. */
  readonly status: number;
  /** Seconds the broker asked to wait (429 `Retry-After`), if it said. */
  readonly retryAfter?: number;
  /** The broker's `X-Request-Id`, if it sent one. */
  readonly requestId?: string;

  constructor(code: BrokerErrorCode | (string & {}), message?: string, details: BrokerErrorDetails = {}) {
    super(message || DEFAULT_MESSAGES[code] || code, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'BrokerError';
    this.code = code;
    this.status = details.status ?? 0;
    if (details.retryAfter !== undefined) this.retryAfter = details.retryAfter;
    if (details.requestId !== undefined) this.requestId = details.requestId;
  }
}

// A JWS/JWT always starts with eyJ (base64url of '{"').
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g;
const KEY_LIKE = /\b(?:sk|pk|ak)_(?:live|test)_[A-Za-z0-9]+/g;
const MAX_MESSAGE = 300;

/**
 * redact returns text safe to show or log: every listed secret, anything
 * shaped like a JWT and anything shaped like a broker key is replaced by
 * "[redacted]", control characters are dropped and the result is cut to
 * 300 characters.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = String(text);
  for (const s of secrets) {
    if (s && s.length >= 8) out = out.split(s).join('[redacted]');
  }
  out = out.replace(JWT_LIKE, '[redacted]').replace(KEY_LIKE, '[redacted]');
  // C0, DEL and C1 controls, bidi controls, line/paragraph separators.
  out = out.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g, ' ');
  if (out.length > MAX_MESSAGE) out = out.slice(0, MAX_MESSAGE) + '…';
  return out;
}
