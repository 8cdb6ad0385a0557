// voicebroker demo widget, on @voicebroker/client: a start button (the
// click that lets the page use the microphone and play audio), the
// microphone published, the agent's audio played, mute and hang-up, the
// room's participants, and a sentence for every error.
//
// It mounts in <div id="voicebroker">. Two modes:
//   - public (default): a publishable key. Configuration, first found wins:
//     query parameters (broker, key, agent), then config.json next to the
//     page (a development broker serves one at /demo/config.json).
//   - backend (data-mode="backend"): the page's own backend mints tickets
//     behind its login: data-agent, data-token-url (POST {channel,
//     dpop_jkt}), data-login-url (POST {user,password}), data-session-url
//     (GET: 200 when signed in).
// DPoP (tickets bound to this browser's key) is on unless the address has
// ?dpop=off or the configuration says "dpop": false.
import { BrokerError, connect, redact } from '@voicebroker/client';
import {
  DisconnectReason,
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
  createLocalAudioTrack,
  setLogLevel,
} from 'livekit-client';
import { WidgetError, codeOf, sentence, sentenceCode } from './explain.js';
import { Meter, TICK_MS } from './meter.js';

const STATUS = {
  loading: 'Loading…',
  'signed-out': 'Signed out',
  idle: 'Ready',
  connecting: 'Connecting…',
  connected: 'Connected',
  muted: 'Muted',
  ended: 'Call ended',
  error: 'Error',
};

// h makes an element; text children are set as text, never parsed as HTML.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

function meterEl(label, id) {
  return h('div', { class: 'vb-meter' },
    h('span', { class: 'vb-meter-label' }, label),
    h('div', { class: 'vb-bar', id, role: 'meter', 'aria-label': label + ' level', 'aria-valuemin': '0', 'aria-valuemax': '1' },
      h('div', { class: 'vb-bar-fill' })));
}

function build(root) {
  const ui = {
    title: h('h1', {}, 'Talk to the agent'),
    status: h('span', { class: 'vb-status', role: 'status', 'aria-live': 'polite' }),
    step: h('p', { class: 'vb-step' }),
    error: h('div', { class: 'vb-error', role: 'alert' }),
    login: h('form', { class: 'vb-login', autocomplete: 'on' },
      h('label', {}, 'User', h('input', { name: 'user', autocomplete: 'username', required: true, maxlength: '64' })),
      h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: '256' })),
      h('button', { type: 'submit', class: 'vb-primary' }, 'Sign in')),
    start: h('button', { type: 'button', class: 'vb-primary vb-start' }, 'Start call'),
    mute: h('button', { type: 'button', class: 'vb-mute', 'aria-pressed': 'false' }, 'Mute'),
    hangup: h('button', { type: 'button', class: 'vb-danger vb-hangup' }, 'Hang up'),
    unlock: h('button', { type: 'button', class: 'vb-unlock' }, 'Play the agent\'s audio'),
    levels: h('div', { class: 'vb-levels' }, meterEl('You', 'vb-mic'), meterEl('Agent', 'vb-agent')),
    peopleTitle: h('h2', { class: 'vb-sub' }, 'In the room'),
    people: h('ul', { class: 'vb-participants', 'aria-label': 'Participants' }),
    facts: h('dl', { class: 'vb-facts' }),
    audio: h('div', { class: 'vb-audio', hidden: true }),
  };
  ui.actions = h('div', { class: 'vb-actions' }, ui.start, ui.mute, ui.hangup, ui.unlock);
  root.classList.add('vb');
  root.replaceChildren(
    h('header', { class: 'vb-head' }, ui.title, ui.status),
    ui.step, ui.error, ui.login, ui.actions, ui.levels,
    ui.peopleTitle, ui.people, ui.facts, ui.audio);
  return ui;
}

// fact sets one row of the facts list.
function fact(ui, name, value) {
  let dd = ui.facts.querySelector(`dd[data-fact="${name}"]`);
  if (!dd) {
    ui.facts.append(h('dt', {}, name));
    dd = h('dd', { 'data-fact': name });
    ui.facts.append(dd);
  }
  dd.textContent = value || '–';
}

async function loadConfig(root) {
  const d = root.dataset;
  const q = new URLSearchParams(location.search);
  const dpopOff = /^(off|false|0|no)$/i.test(q.get('dpop') || '');
  if (d.mode === 'backend') {
    return {
      mode: 'backend', agent: d.agent || '', broker: d.broker || undefined, dpop: !dpopOff,
      tokenUrl: d.tokenUrl || 'api/token', loginUrl: d.loginUrl || 'login', sessionUrl: d.sessionUrl || '',
    };
  }
  let c;
  if (q.get('key')) {
    c = { broker: q.get('broker'), key: q.get('key'), agent: q.get('agent') || 'demo-bot' };
  } else {
    let res;
    try {
      res = await fetch(d.config || 'config.json', { cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      throw new WidgetError('config_missing', 'config.json could not be fetched', e);
    }
    c = res.ok ? await res.json().catch(() => null) : null;
    if (!c || typeof c !== 'object') throw new WidgetError('config_missing', 'no config.json next to the page');
    if (c.error) throw new WidgetError('config_missing', String(c.error));
  }
  return {
    mode: 'public', agent: c.agent || '', key: c.key || '', broker: c.broker || location.origin,
    dpop: !dpopOff && c.dpop !== false,
  };
}

// backendTokenProvider asks the page's backend for a ticket, passing this
// browser's key thumbprint so the backend can bind the ticket to it.
function backendTokenProvider(cfg) {
  return async ({ channel, dpopJkt, signal }) => {
    let res;
    try {
      res = await fetch(cfg.tokenUrl, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(dpopJkt ? { channel, dpop_jkt: dpopJkt } : { channel }),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw new BrokerError('backend_unreachable', 'the backend did not answer', { cause: e });
    }
    const data = await res.json().catch(() => null);
    if (res.ok && data && typeof data.token === 'string') {
      if (typeof data.server === 'string') cfg.server = data.server;
      return data;
    }
    const retry = Number(res.headers.get('Retry-After'));
    throw new BrokerError(data && typeof data.error === 'string' ? data.error : 'http_error',
      data && typeof data.message === 'string' ? data.message : `the backend answered HTTP ${res.status}`,
      { status: res.status, ...(retry > 0 ? { retryAfter: retry } : {}), requestId: res.headers.get('X-Request-Id') || undefined });
  };
}

// A refused CORS preflight and an unreachable broker look alike to fetch;
// an opaque no-cors probe of /healthz tells them apart.
async function brokerAnswers(base) {
  try {
    await fetch(base.replace(/\/+$/, '') + '/healthz', { mode: 'no-cors', cache: 'no-store', credentials: 'omit' });
    return true;
  } catch {
    return false;
  }
}

function kindOf(p, room) {
  if (p === room.localParticipant) return 'you';
  if (p.kind === ParticipantKind.AGENT || p.identity.startsWith('agent-')) return 'agent';
  return 'guest';
}

async function main() {
  // livekit-client's own console lines: warnings and errors only.
  setLogLevel('warn');
  const root = document.getElementById('voicebroker');
  if (!root) return;
  const ui = build(root);
  const meters = { mic: null, agent: null };
  let cfg = null;
  let room = null;
  let mic = null;
  let ctx = null; // the AudioContext, made by the start click
  let abort = null;
  let ticker = 0;
  let lastError = null;
  let hangingUp = false;

  function setState(state, step = '') {
    root.dataset.state = state;
    ui.status.textContent = STATUS[state] || state;
    ui.status.dataset.state = state;
    ui.step.textContent = step;
    ui.step.hidden = !step;
    const inCall = state === 'connected' || state === 'muted';
    ui.login.hidden = state !== 'signed-out';
    ui.start.hidden = !(state === 'idle' || state === 'ended' || (state === 'error' && lastError?.retry));
    ui.start.textContent = state === 'idle' ? 'Start call' : state === 'ended' ? 'Call again' : 'Try again';
    ui.mute.hidden = !inCall;
    ui.hangup.hidden = !(inCall || state === 'connecting');
    ui.hangup.textContent = state === 'connecting' ? 'Cancel' : 'Hang up';
    ui.levels.hidden = !inCall;
    ui.peopleTitle.hidden = ui.people.hidden = !inCall;
    ui.unlock.hidden = !(inCall && room && !room.canPlaybackAudio);
    ui.mute.textContent = state === 'muted' ? 'Unmute' : 'Mute';
    ui.mute.setAttribute('aria-pressed', String(state === 'muted'));
    if (state !== 'error') showError(null);
    renderPeople();
  }

  function vars(e) {
    return {
      agent: cfg?.agent, broker: cfg?.broker || location.origin, server: cfg?.server || cfg?.broker || location.origin,
      status: e?.status || '?', retryAfter: e?.retryAfter ?? 'a few',
    };
  }

  function showError(e, code) {
    ui.error.replaceChildren();
    ui.error.hidden = !e;
    root.dataset.code = e ? code : '';
    if (!e) return;
    const said = redact(e.message || '', cfg?.key ? [cfg.key] : []);
    ui.error.append(
      h('p', { class: 'vb-sentence' }, sentence(sentenceCode(code, e), cfg?.mode || 'public', vars(e))),
      h('p', { class: 'vb-code' }, h('code', {}, code), said && said !== code ? ' · ' + said : '',
        e.requestId ? ` · request ${e.requestId}` : ''));
  }

  function fail(e, code = codeOf(e)) {
    lastError = { code, retry: code !== 'config_missing' && code !== 'dpop_unavailable' };
    setState('error');
    showError(e, code);
  }

  function renderPeople() {
    ui.people.replaceChildren();
    if (!room || room.state === 'disconnected') {
      ui.people.append(h('li', { class: 'vb-empty' }, 'Nobody yet.'));
      return;
    }
    const all = [room.localParticipant, ...room.remoteParticipants.values()];
    for (const p of all) {
      const kind = kindOf(p, room);
      const micOn = p.isMicrophoneEnabled;
      ui.people.append(h('li', {
        class: 'vb-person', 'data-identity': p.identity, 'data-kind': kind,
        'data-speaking': String(p.isSpeaking), 'data-mic': micOn ? 'on' : 'off',
      },
      h('span', { class: 'vb-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'vb-name' }, p.name || p.identity),
      h('span', { class: 'vb-badge' }, kind),
      h('span', { class: 'vb-mic-state' }, micOn ? '' : 'muted')));
    }
    if (!all.some((p) => kindOf(p, room) === 'agent')) {
      ui.people.append(h('li', { class: 'vb-empty' }, 'Waiting for the agent to join…'));
    }
  }

  function stopTicker() {
    clearInterval(ticker);
    ticker = 0;
  }

  function startTicker() {
    stopTicker();
    ticker = setInterval(() => {
      meters.mic.tick();
      meters.agent.tick();
    }, TICK_MS);
  }

  function cleanupCall() {
    stopTicker();
    meters.agent?.clear();
    meters.mic?.clear();
    if (mic) {
      mic.stop();
      mic = null;
    }
    ui.audio.replaceChildren();
  }

  function makeRoom() {
    const r = new Room({ adaptiveStream: false, dynacast: false });
    r.on(RoomEvent.TrackSubscribed, (track, pub, p) => {
      if (track.kind !== Track.Kind.Audio) return;
      ui.audio.append(track.attach());
      meters.agent.add(pub.trackSid, track.mediaStreamTrack);
      renderPeople();
    });
    r.on(RoomEvent.TrackUnsubscribed, (track, pub) => {
      track.detach().forEach((el) => el.remove());
      meters.agent.remove(pub.trackSid);
      renderPeople();
    });
    for (const ev of [RoomEvent.ParticipantConnected, RoomEvent.ParticipantDisconnected, RoomEvent.ActiveSpeakersChanged,
      RoomEvent.TrackMuted, RoomEvent.TrackUnmuted, RoomEvent.ParticipantNameChanged, RoomEvent.LocalTrackPublished]) {
      r.on(ev, () => renderPeople());
    }
    r.on(RoomEvent.AudioPlaybackStatusChanged, () => {
      ui.unlock.hidden = r.canPlaybackAudio || !(root.dataset.state === 'connected' || root.dataset.state === 'muted');
    });
    r.on(RoomEvent.Disconnected, (reason) => {
      if (room !== r) return;
      cleanupCall();
      if (root.dataset.state === 'connecting') return; // connect() reports it
      setState('ended', endSentence(reason));
    });
    return r;
  }

  function endSentence(reason) {
    if (hangingUp || reason === DisconnectReason.CLIENT_INITIATED) return 'You hung up.';
    switch (reason) {
      case DisconnectReason.ROOM_DELETED:
      case DisconnectReason.ROOM_CLOSED: return 'The room was closed.';
      case DisconnectReason.PARTICIPANT_REMOVED: return 'You were removed from the room.';
      case DisconnectReason.DUPLICATE_IDENTITY: return 'You joined this room from somewhere else.';
      case DisconnectReason.SERVER_SHUTDOWN: return 'The LiveKit server shut down.';
      default: return 'The connection to the room was lost.';
    }
  }

  async function start() {
    // This click is the user gesture that lets the page play audio: the
    // AudioContext is made and resumed inside it.
    ctx ??= new AudioContext();
    const resumed = ctx.resume();
    meters.mic ??= new Meter(ctx, root.querySelector('#vb-mic'));
    meters.agent ??= new Meter(ctx, root.querySelector('#vb-agent'));
    meters.mic.reset();
    meters.agent.reset();
    hangingUp = false;
    abort = new AbortController();
    const signal = abort.signal;
    room = makeRoom();
    room.startAudio().catch(() => {});
    setState('connecting', 'Asking for the microphone…');
    try {
      await resumed;
      mic = await createLocalAudioTrack({ echoCancellation: true, noiseSuppression: true, autoGainControl: true });
      if (signal.aborted) throw signal.reason;
      setState('connecting', cfg.mode === 'backend' ? 'Getting a ticket from the backend…' : 'Getting a ticket from the broker…');
      // The library's requests, to tell the caller which step is under way.
      const steps = (input, init) => {
        const connecting = /\/connect$/.test(new URL(typeof input === 'string' ? input : input.url, location.href).pathname);
        if (connecting) setState('connecting', 'Trading the ticket at the broker…');
        const answer = fetch(input, init);
        if (connecting) answer.then((res) => res.ok && setState('connecting', 'Joining the room…'), () => {});
        return answer;
      };
      const options = {
        agent: cfg.agent, channel: 'webrtc', dpop: cfg.dpop, room, signal, fetch: steps,
        ...(cfg.mode === 'backend'
          ? { tokenProvider: backendTokenProvider(cfg), ...(cfg.broker ? { broker: cfg.broker } : {}) }
          : { broker: cfg.broker, publishableKey: cfg.key }),
      };
      await connect(options);
      setState('connecting', 'Publishing the microphone…');
      await room.localParticipant.publishTrack(mic, { source: Track.Source.Microphone, name: 'microphone' });
      meters.mic.add('mic', mic.mediaStreamTrack);
      fact(ui, 'room', room.name);
      fact(ui, 'you', room.localParticipant.identity);
      startTicker();
      setState('connected');
    } catch (err) {
      let e = err;
      const r = room;
      room = null; // its Disconnected event is this failure's, reported here
      cleanupCall();
      r.disconnect().catch(() => {});
      if (signal.aborted) {
        setState('ended', 'You cancelled the call.');
        return;
      }
      let code = codeOf(e);
      if (code === 'network_error' && cfg.mode === 'public' && (await brokerAnswers(cfg.broker))) {
        code = 'origin_not_allowed';
        e = new WidgetError(code, 'the broker answers, but the browser refused its answer to this origin (CORS)', e);
      }
      if (code === 'login_required' && cfg.mode === 'backend') {
        setState('signed-out', sentence(code, cfg.mode));
        return;
      }
      fail(e, code);
    }
  }

  async function hangup() {
    hangingUp = true;
    if (root.dataset.state === 'connecting') {
      abort?.abort();
      return;
    }
    await room?.disconnect();
  }

  async function toggleMute() {
    if (!mic) return;
    const muting = root.dataset.state !== 'muted';
    ui.mute.disabled = true;
    try {
      if (muting) await mic.mute();
      else await mic.unmute();
      setState(muting ? 'muted' : 'connected');
    } finally {
      ui.mute.disabled = false;
    }
  }

  async function signIn(ev) {
    ev.preventDefault();
    const form = new FormData(ui.login);
    const submit = ui.login.querySelector('button');
    submit.disabled = true;
    try {
      const res = await fetch(cfg.loginUrl, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user: String(form.get('user') || ''), password: String(form.get('password') || '') }),
      });
      if (res.status === 401) {
        setState('signed-out');
        showError(new WidgetError('login_failed', 'wrong user or password'), 'login_failed');
        return;
      }
      if (!res.ok) throw new BrokerError('http_error', `the backend answered HTTP ${res.status}`, { status: res.status });
      ui.login.reset();
      fact(ui, 'signed in as', String(form.get('user') || ''));
      setState('idle', 'Press Start call, then allow the microphone.');
    } catch (e) {
      fail(e instanceof BrokerError ? e : new BrokerError('backend_unreachable', 'the backend did not answer', { cause: e }));
    } finally {
      submit.disabled = false;
    }
  }

  ui.start.addEventListener('click', () => start());
  ui.hangup.addEventListener('click', () => hangup());
  ui.mute.addEventListener('click', () => toggleMute());
  ui.unlock.addEventListener('click', () => room?.startAudio().then(() => setState(root.dataset.state)));
  ui.login.addEventListener('submit', signIn);
  window.addEventListener('pagehide', () => room?.disconnect());

  setState('loading');
  try {
    cfg = await loadConfig(root);
  } catch (e) {
    fail(e);
    return;
  }
  ui.title.textContent = cfg.agent ? `Talk to ${cfg.agent}` : 'Talk to the agent';
  fact(ui, 'agent', cfg.agent);
  fact(ui, 'mode', cfg.mode === 'backend' ? 'tokenProvider (your backend mints the ticket)' : 'publishable key');
  fact(ui, 'ticket', cfg.dpop ? 'bound to this browser (DPoP)' : 'not bound (DPoP off)');
  fact(ui, 'page origin', location.origin);
  if (cfg.mode === 'backend') {
    let signedIn = false;
    if (cfg.sessionUrl) {
      const res = await fetch(cfg.sessionUrl, { credentials: 'same-origin', cache: 'no-store' }).catch(() => null);
      signedIn = !!res && res.ok;
      const who = signedIn ? await res.json().catch(() => null) : null;
      if (who && typeof who.user === 'string') fact(ui, 'signed in as', who.user);
    }
    if (!signedIn) {
      setState('signed-out', sentence('login_required', cfg.mode));
      return;
    }
  }
  setState('idle', 'Press Start call, then allow the microphone.');
}

main();
