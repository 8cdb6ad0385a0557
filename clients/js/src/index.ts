/**
 * @voicebroker/client: join a voicebroker agent's LiveKit room from a
 * browser, with a ticket from your backend (tokenProvider) or from the
 * broker's public mode (publishableKey), optionally bound to this browser's
 * key (DPoP).
 */
import { Room, TokenSource, type RoomConnectOptions, type RoomOptions, type TokenSourceFetchOptions } from 'livekit-client';
import { BrokerError, redact } from './errors.js';
import { abortable, resolveKey, runSession, validate, type SessionOptions } from './session.js';

export { BrokerError, redact, type BrokerErrorCode, type BrokerErrorDetails } from './errors.js';
export { createDPoPKey, jwkThumbprint, htuOf, type DPoPKey, type PublicJwk } from './dpop.js';
export { parseRetryAfter, type RetryOptions } from './http.js';
export {
  fetchSession,
  type Channel,
  type Session,
  type SessionOptions,
  type Ticket,
  type TicketRequest,
  type TokenProvider,
} from './session.js';

/** Options of {@link connect}: the session's, plus how to build and join the Room. */
export interface ConnectOptions extends SessionOptions {
  /** A Room to connect (its event handlers already attached); default a new Room(roomOptions). */
  room?: Room;
  /** Options for the new Room; ignored when `room` is given. */
  roomOptions?: RoomOptions;
  /** Passed to room.connect. */
  connectOptions?: RoomConnectOptions;
}

/**
 * connect gets a ticket, trades it at the broker's `/connect` and joins
 * the LiveKit room, returning the connected livekit-client Room.
 *
 * ```ts
 * const room = await connect({ broker, agent: 'florencia', tokenProvider });
 * ```
 *
 * Rejects with a BrokerError (`code` as in the broker's contract, or
 * `livekit_connect_failed` when the room could not be joined), a TypeError
 * for bad options, or the signal's reason when aborted (a half-joined room
 * is disconnected).
 */
export async function connect(options: ConnectOptions): Promise<Room> {
  validate(options);
  const key = await resolveKey(options.dpop);
  const session = await runSession(options, key);
  const room = options.room ?? new Room(options.roomOptions);
  const signal = options.signal;
  try {
    await abortable(room.connect(session.serverUrl, session.participantToken, options.connectOptions), signal);
    return room;
  } catch (e) {
    await room.disconnect().catch(() => {});
    if (signal?.aborted) throw signal.reason;
    const detail = e instanceof Error && e.message ? ': ' + redact(e.message, [session.participantToken]) : '';
    throw new BrokerError('livekit_connect_failed', 'could not join the LiveKit room' + detail, { cause: e });
  }
}

/** The TokenSource {@link createTokenSource} returns: livekit-client's own `TokenSource.custom`. */
export type BrokerTokenSource = ReturnType<typeof TokenSource.custom>;

/**
 * createTokenSource is a LiveKit `TokenSource` (livekit-client's
 * `TokenSource.custom`) on the broker's flow, for LiveKit's components and
 * session helpers: each fetch mints a ticket and trades it at `/connect`
 * for `{serverUrl, participantToken}`; LiveKit caches the answer until the
 * LiveKit token expires or the fetch options change.
 *
 * The broker chooses the room and the agent dispatch; the fetch options
 * LiveKit passes (roomName, agentName, ...) reach the tokenProvider as
 * `fetchOptions` for backends that want them. One DPoP key is made per
 * TokenSource (on first fetch) unless `dpop` gives one or is false.
 */
export function createTokenSource(options: SessionOptions): BrokerTokenSource {
  validate(options);
  let key: ReturnType<typeof resolveKey> | undefined;
  return TokenSource.custom(async (fetchOptions: TokenSourceFetchOptions) => {
    key ??= resolveKey(options.dpop);
    const k = await key.catch((e) => {
      key = undefined; // let a later fetch try again
      throw e;
    });
    const s = await runSession(options, k, { ...fetchOptions });
    return { serverUrl: s.serverUrl, participantToken: s.participantToken };
  });
}
