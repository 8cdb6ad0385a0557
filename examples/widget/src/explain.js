// The widget's sentences: one for every error code it can meet (see
// messages.json), with the facts of this page filled in.
import { BrokerError } from '@voicebroker/client';
import messages from './messages.json';

// WidgetError is a failure found by the widget itself (microphone, sign-in,
// configuration), with a code from messages.json like BrokerError's.
export class WidgetError extends Error {
  constructor(code, message, cause) {
    super(message || code, cause === undefined ? undefined : { cause });
    this.name = 'WidgetError';
    this.code = code;
  }
}

// codeOf returns the code of any error the call can end with.
export function codeOf(e) {
  if (e instanceof BrokerError || e instanceof WidgetError) return e.code;
  if (e && e.name === 'NotAllowedError') return 'microphone_denied';
  if (e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')) return 'microphone_unavailable';
  return 'unknown';
}

// sentenceCode is the code whose sentence explains e best: its own,
// except where the broker's message tells a more useful one.
export function sentenceCode(code, e) {
  const said = String((e && e.message) || '');
  if (code === 'invalid_request' && /dpop_jkt"? is required/.test(said)) return 'dpop_required';
  return code;
}

// sentence is the sentence for code in mode ('public' or 'backend'), with
// {agent}, {origin}, {broker}, {server}, {status} and {retryAfter} filled
// in from vars. Unknown codes get the 'unknown' sentence naming the code.
export function sentence(code, mode, vars = {}) {
  const own = Object.hasOwn(messages, code + '@' + mode) ? messages[code + '@' + mode] : undefined;
  const text = own ?? (Object.hasOwn(messages, code) && !code.startsWith('_') ? messages[code] : messages.unknown);
  const all = { code, origin: location.origin, ...vars };
  return text.replace(/\{(\w+)\}/g, (_, k) => (all[k] === undefined || all[k] === '' ? '?' : String(all[k])));
}
