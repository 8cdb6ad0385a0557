// Audio levels measured in the page: an AnalyserNode on one or more
// MediaStreamTracks (the microphone, or the agent's remote tracks), read
// every TICK_MS. What a meter shows is what the page really receives.

export const TICK_MS = 100;
// RMS (full scale 1.0) from which a tick counts as audible: -40 dBFS.
export const AUDIBLE_RMS = 0.01;

export class Meter {
  // el is the meter's bar container; its data-rms, data-peak and
  // data-audible-ms attributes carry the measurements.
  constructor(ctx, el) {
    this.ctx = ctx;
    this.el = el;
    this.bar = el.querySelector('.vb-bar-fill');
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    this.buf = new Float32Array(this.analyser.fftSize);
    this.sources = new Map();
    this.reset();
  }

  reset() {
    this.peak = 0;
    this.audibleMs = 0;
    this.show(0);
  }

  // add measures track (a MediaStreamTrack) under id until remove(id).
  add(id, track) {
    this.remove(id);
    const src = this.ctx.createMediaStreamSource(new MediaStream([track]));
    src.connect(this.analyser);
    this.sources.set(id, src);
  }

  remove(id) {
    const src = this.sources.get(id);
    if (src) {
      src.disconnect();
      this.sources.delete(id);
    }
  }

  clear() {
    for (const id of [...this.sources.keys()]) this.remove(id);
    this.show(0);
  }

  // tick reads the current RMS and updates the bar and the attributes.
  tick() {
    let rms = 0;
    if (this.sources.size > 0) {
      this.analyser.getFloatTimeDomainData(this.buf);
      let sum = 0;
      for (let i = 0; i < this.buf.length; i++) sum += this.buf[i] * this.buf[i];
      rms = Math.sqrt(sum / this.buf.length);
    }
    if (rms > this.peak) this.peak = rms;
    if (rms >= AUDIBLE_RMS) this.audibleMs += TICK_MS;
    this.show(rms);
  }

  show(rms) {
    // -60 dBFS .. 0 dBFS across the bar.
    const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
    const frac = Math.min(1, Math.max(0, (db + 60) / 60));
    this.bar.style.width = (frac * 100).toFixed(1) + '%';
    this.el.setAttribute('aria-valuenow', frac.toFixed(2));
    this.el.dataset.rms = rms.toFixed(4);
    this.el.dataset.peak = this.peak.toFixed(4);
    this.el.dataset.audibleMs = String(this.audibleMs);
  }
}
