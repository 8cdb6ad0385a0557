// The job of voicebroker's example agent, run in a job process for each
// room LiveKit dispatches to the worker: join, greet the caller with a
// short tone, then echo the caller's microphone back on the agent's own
// audio track until the caller leaves.
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

// echo plays a remote audio track into source, frame by frame.
async function echo(track, source) {
  const stream = new AudioStream(track, { sampleRate: SAMPLE_RATE, numChannels: 1 });
  for await (const frame of stream) {
    await source.captureFrame(frame);
  }
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
      echo(t, source).catch((e) => emit('agent.error', { ...base, error: String(e) }));
    };
    ctx.room.on(RoomEvent.TrackSubscribed, (t, _pub, p) => start(t, p));
    for (const pub of caller.trackPublications.values()) {
      if (pub.track) start(pub.track, caller);
    }
  },
});
