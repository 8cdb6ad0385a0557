import { BrokerError, redact } from './errors.js';

/** How the library waits and retries. Every field has a safe default. */
export interface RetryOptions {
  /** 429 answers retried per request, after waiting as `Retry-After` says. Default 3. */
  rateLimitRetries?: number;
  /**
   * The longest wait, in seconds, worth making: a 429 whose `Retry-After`
   * is longer fails at once with `rate_limited` and `retryAfter` set, so a
   * page can say "try again in N s". Default 30.
   */
  maxRetryAfter?: number;
  /**
   * Fresh tickets to mint after `/connect` answered `token_expired` or
   * `token_used` (the provider or `/public/token` is asked again). Default 1.
   */
  remints?: number;
  /**
   * Replaces the wait between tries (tests, custom schedulers). It must
   * reject with `signal.reason` when `signal` aborts.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What every request needs; built once per connect or fetch. */
export interface HttpContext {
  fetch: typeof fetch;
  signal?: AbortSignal;
  timeoutMs: number;
  retry: Required<Omit<RetryOptions, 'sleep'>> & Pick<RetryOptions, 'sleep'>;
  /** Values that must never appear in an error message. */
  secrets: string[];
}

/** Largest answer body read from the broker; its answers are a few hundred bytes. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
const JITTER_MS = 250;

/** sleep waits ms, or rejects with signal.reason as soon as signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * parseRetryAfter reads a Retry-After header (delay-seconds or an
 * HTTP-date) as whole seconds; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v);
  // An HTTP-date always ends in GMT (RFC 9110 §5.6.7).
  const at = /^[A-Za-z][A-Za-z ,:0-9-]+ GMT$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

async function readBounded(res: Response): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > MAX_RESPONSE_BYTES) {
    await res.body?.cancel().catch(() => {});
    throw new BrokerError('http_error', 'the broker\'s answer is too large', { status: res.status });
  }
  if (!res.body) return res.text();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {});
      throw new BrokerError('http_error', 'the broker\'s answer is too large', { status: res.status });
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * postJSON makes one POST and returns the 2xx answer's JSON object, or
 * throws: BrokerError with the broker's code for a contract error body,
 * `http_error` for any other non-2xx, `invalid_response` for a 2xx that is
 * not a JSON object, `network_error` or `timeout` when no answer came, and
 * the signal's reason when the caller aborted. No message carries a value
 * listed in ctx.secrets.
 */
export async function postJSON(
  ctx: HttpContext,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, ctx.timeoutMs);
  const onAbort = () => ac.abort(ctx.signal!.reason);
  if (ctx.signal?.aborted) {
    clearTimeout(timer);
    throw ctx.signal.reason;
  }
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let res: Response;
    try {
      res = await ctx.fetch(url, {
        method: 'POST',
        headers: body === undefined ? headers : { ...headers, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ac.signal,
        // The broker uses no cookies; never send the page's.
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw failure(ctx, timedOut, e);
    }
    let text: string;
    try {
      text = await readBounded(res);
    } catch (e) {
      if (e instanceof BrokerError) throw e;
      throw failure(ctx, timedOut, e);
    }
    const requestId = res.headers.get('x-request-id') ?? undefined;
    let data: unknown;
    try {
      data = text === '' ? undefined : JSON.parse(text);
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
      const d = data as { error?: unknown; message?: unknown } | undefined;
      if (d && typeof d.error === 'string' && /^[a-z0-9_]{1,64}$/.test(d.error)) {
        const message = typeof d.message === 'string' && d.message ? redact(d.message, ctx.secrets) : undefined;
        throw new BrokerError(d.error, message, { status: res.status, retryAfter, requestId });
      }
      const code = res.status === 429 ? 'rate_limited' : 'http_error';
      throw new BrokerError(code, code === 'http_error' ? `the broker answered HTTP ${res.status}` : undefined, {
        status: res.status,
        retryAfter,
        requestId,
      });
    }
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      throw new BrokerError('invalid_response', 'the broker\'s answer is not a JSON object', { status: res.status, requestId });
    }
    return data as Record<string, unknown>;
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

function failure(ctx: HttpContext, timedOut: boolean, e: unknown): unknown {
  if (ctx.signal?.aborted) return ctx.signal.reason;
  if (timedOut) return new BrokerError('timeout');
  return new BrokerError('network_error', undefined, { cause: e });
}

/**
 * withRateLimitRetry runs attempt again after a 429, waiting as the
 * answer's Retry-After says (plus up to 250 ms of jitter; 1, 2, 4 ... s
 * when it says nothing), at most ctx.retry.rateLimitRetries times and never
 * longer than ctx.retry.maxRetryAfter per wait. Waits end early, with the
 * signal's reason, when ctx.signal aborts.
 */
export async function withRateLimitRetry<T>(ctx: HttpContext, attempt: () => Promise<T>): Promise<T> {
  const wait = ctx.retry.sleep ?? sleep;
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof BrokerError) || e.status !== 429 || tries >= ctx.retry.rateLimitRetries) throw e;
      const seconds = e.retryAfter ?? Math.min(2 ** tries, ctx.retry.maxRetryAfter);
      if (seconds > ctx.retry.maxRetryAfter) throw e;
      await wait(seconds * 1000 + Math.floor(Math.random() * JITTER_MS), ctx.signal);
    }
  }
}
