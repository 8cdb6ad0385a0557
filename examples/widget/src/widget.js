// voicebroker demo widget: gets a single-use ticket from the broker's
// /public/token with the agent's publishable key, trades it once at
// /connect for a LiveKit token, and joins the agent's room.
//
// Configuration, first found wins: query parameters (broker, key, agent,
// channel), then ./config.json (served by a development broker).
import { Room, RoomEvent } from 'livekit-client';

const $ = (id) => document.getElementById(id);

function show(state, detail) {
  $('status').textContent = state;
  $('status').dataset.state = state;
  $('detail').textContent = detail || '';
}

async function loadConfig() {
  const q = new URLSearchParams(location.search);
  if (q.get('key')) {
    return { broker: q.get('broker') || '', key: q.get('key'), agent: q.get('agent') || 'demo-bot', channel: q.get('channel') || 'webrtc' };
  }
  const res = await fetch('config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error('no configuration: pass ?broker=&key=&agent= or serve config.json');
  return res.json();
}

async function post(url, token, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.message || res.statusText);
    err.code = data.error || 'http_' + res.status;
    throw err;
  }
  return data;
}

// A refused CORS preflight and an unreachable broker look alike to fetch;
// an opaque no-cors probe of /healthz tells them apart.
async function explainNetworkError(broker) {
  try {
    await fetch(broker + '/healthz', { mode: 'no-cors', cache: 'no-store' });
    return { code: 'origin_not_allowed', message: 'the broker refused this page\'s origin (' + location.origin + ')' };
  } catch {
    return { code: 'broker_unreachable', message: 'the broker at ' + (broker || location.origin) + ' did not answer' };
  }
}

async function start() {
  const cfg = await loadConfig();
  $('agent').textContent = cfg.agent;
  show('requesting ticket');
  let ticket;
  try {
    ticket = await post(cfg.broker + '/public/token', cfg.key, { agent: cfg.agent, channel: cfg.channel });
  } catch (e) {
    if (e instanceof TypeError) {
      const x = await explainNetworkError(cfg.broker);
      show(x.code, x.message);
    } else {
      show(e.code, e.message);
    }
    return;
  }
  show('trading ticket');
  let session;
  try {
    session = await post(cfg.broker + '/connect', ticket.token);
  } catch (e) {
    show(e.code || 'connect_failed', e.message);
    return;
  }
  $('room').textContent = session.room_name;
  $('identity').textContent = session.participant_identity;
  const room = new Room();
  room.on(RoomEvent.ConnectionStateChanged, (state) => show(state));
  room.on(RoomEvent.ParticipantConnected, (p) => {
    const li = document.createElement('li');
    li.textContent = p.identity;
    $('participants').appendChild(li);
  });
  try {
    await room.connect(session.server_url, session.participant_token);
    show(room.state);
  } catch (e) {
    show('livekit_error', e.message);
  }
  window.voicebrokerRoom = room;
}

start().catch((e) => show('error', e.message));
