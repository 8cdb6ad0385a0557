// Compiled (not run) by `npm test`: the published types, resolved through
// the package's own name and exports map, as an application sees them.
import { Room, type TokenSourceConfigurable } from 'livekit-client';
import {
  BrokerError,
  connect,
  createDPoPKey,
  createTokenSource,
  fetchSession,
  type BrokerErrorCode,
  type Session,
  type TokenProvider,
} from '@voicebroker/client';

const tokenProvider: TokenProvider = async ({ agent, channel, dpopJkt, signal }) => {
  const res = await fetch('/api/voice-ticket', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ agent, channel, dpop_jkt: dpopJkt }),
    ...(signal ? { signal } : {}),
  });
  return res.json();
};

// Pinecall's shape: a provider that takes no argument.
const pinecall: TokenProvider = async () => (await fetch('/api/token?channel=webrtc')).json();

export async function usage(): Promise<void> {
  const room: Room = await connect({ broker: 'https://broker.example.com', agent: 'florencia', channel: 'webrtc', tokenProvider });
  await room.disconnect();
  await connect({ broker: 'https://broker.example.com', agent: 'demo-bot', publishableKey: 'pk_live_x', room: new Room(), roomOptions: { adaptiveStream: true }, connectOptions: { autoSubscribe: true } });
  await connect({ agent: 'florencia', tokenProvider: pinecall, dpop: false, signal: AbortSignal.timeout(10_000), retry: { remints: 1, rateLimitRetries: 2, maxRetryAfter: 10 } });
  const key = await createDPoPKey();
  const source: TokenSourceConfigurable = createTokenSource({ broker: 'https://b.example', agent: 'florencia', tokenProvider, dpop: key });
  const { serverUrl, participantToken } = await source.fetch({ agentName: 'florencia' });
  const s: Session = await fetchSession({ broker: 'https://b.example', agent: 'florencia', publishableKey: 'pk_test_x' });
  void serverUrl, participantToken, s.roomName;
  try {
    await connect({ broker: 'https://b.example', agent: 'florencia', tokenProvider });
  } catch (e) {
    if (e instanceof BrokerError) {
      const code: BrokerErrorCode | string = e.code;
      const status: number = e.status;
      const wait: number | undefined = e.retryAfter;
      void code, status, wait;
    }
  }
}
