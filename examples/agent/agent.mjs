// The job of voicebroker's example agent, run in a job process for each
// room LiveKit dispatches to the worker: join, greet the caller with a
// short tone, then echo the caller's microphone back on the agent's own
// audio track until the caller leaves, logging the level of what it hears
// (agent.heard) and the caller's mute button (agent.caller_muted,
// agent.caller_unmuted).
import { AutoSubscribe, defineAgent } from '@livekit/agents';
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from '@livekit/rtc-node';
import { emit, parseDispatch } from './log.mjs';

const SAMPLE_RATE = 48000;
const FRAME = SAMPLE_RATE / 100; // 10 ms

// tone queues seconds of a sine at hz (a greeting anyone can hear).
async function tone(source, hz, seconds) {
  let n = 0;
  for (let f = 0; f < seconds * 100; f++) {
    const data = new Int16Array(FRAME);
    for (let i = 0; i < FRAME; i++, n++) {
      data[i] = Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * hz * n) / SAMPLE_RATE));
    }
    await source.captureFrame(new AudioFrame(data, SAMPLE_RATE, 1, FRAME));
  }
}

// Frames of 10 ms per agent.heard event (half a second).
const LEVEL_WINDOW = 50;

// echo plays a remote audio track into source, frame by frame, and calls
// heard every LEVEL_WINDOW frames with the level of what it received:
// {frames, rms, peak}, full scale 1.0 (rms of the whole window, peak the
// loudest frame's rms). Silence is 0; the caller's speech is around 0.01 to 0.3.
async function echo(track, source, heard) {
  const stream = new AudioStream(track, { sampleRate: SAMPLE_RATE, numChannels: 1 });
  let frames = 0;
  let sumSquares = 0;
  let samples = 0;
  let peak = 0;
  for await (const frame of stream) {
    const d = frame.data;
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
    sumSquares += s;
    samples += d.length;
    if (d.length > 0) peak = Math.max(peak, Math.sqrt(s / d.length) / 32768);
    if (++frames === LEVEL_WINDOW) {
      heard({ frames, rms: round4(Math.sqrt(sumSquares / Math.max(samples, 1)) / 32768), peak: round4(peak) });
      frames = sumSquares = samples = peak = 0;
    }
    await source.captureFrame(frame);
  }
}

function round4(x) {
  return Math.round(x * 10000) / 10000;
}

export default defineAgent({
  entry: async (ctx) => {
    const job = ctx.job;
    const dispatch = parseDispatch(job.metadata);
    const base = {
      agentName: job.agentName,
      jobId: job.id,
      metadata: job.metadata,
      org: dispatch.org ?? null,
      agent: dispatch.agent ?? null,
      room: job.room?.name ?? '',
      roomMetadata: job.room?.metadata ?? '',
    };
    emit('agent.job', base);

    await ctx.connect(undefined, AutoSubscribe.AUDIO_ONLY);
    emit('agent.joined', { ...base, identity: ctx.room.localParticipant?.identity ?? '' });

    const source = new AudioSource(SAMPLE_RATE, 1);
    const track = LocalAudioTrack.createAudioTrack('agent-voice', source);
    // The greeting waits until someone has subscribed to the agent's
    // voice (at most 10 s), so the caller hears it from the start.
    const heard = new Promise((resolve) => {
      ctx.room.once(RoomEvent.LocalTrackSubscribed, resolve);
      setTimeout(resolve, 10_000);
    });
    await ctx.room.localParticipant.publishTrack(
      track,
      new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }),
    );

    const caller = await ctx.waitForParticipant();
    emit('agent.caller', { ...base, caller: caller.identity });
    ctx.room.on(RoomEvent.ParticipantDisconnected, (p) => {
      if (p.identity === caller.identity) {
        emit('agent.caller_left', { ...base, caller: caller.identity });
        ctx.shutdown('caller left');
      }
    });

    await heard;
    emit('agent.greeting', { ...base, caller: caller.identity });
    await tone(source, 440, 1);

    let echoing = false;
    const start = (t, p) => {
      if (echoing || p.identity !== caller.identity || t.kind !== TrackKind.KIND_AUDIO) return;
      echoing = true;
      emit('agent.echo', { ...base, caller: caller.identity, track: t.sid });
      const heard = (level) => emit('agent.heard', { ...base, caller: caller.identity, track: t.sid, ...level });
      echo(t, source, heard).catch((e) => emit('agent.error', { ...base, error: String(e) }));
    };
    ctx.room.on(RoomEvent.TrackSubscribed, (t, _pub, p) => start(t, p));
    // The caller's mute button, as the agent sees it.
    for (const [ev, name] of [[RoomEvent.TrackMuted, 'agent.caller_muted'], [RoomEvent.TrackUnmuted, 'agent.caller_unmuted']]) {
      ctx.room.on(ev, (pub, p) => {
        if (p.identity === caller.identity) emit(name, { ...base, caller: caller.identity, track: pub.sid });
      });
    }
    for (const pub of caller.trackPublications.values()) {
      if (pub.track) start(pub.track, caller);
    }
  },
});
