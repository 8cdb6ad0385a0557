package registry

import (
	"sync"
	"time"
)

// KeyRef names a secret key.
type KeyRef struct{ Org, ID string }

// UsageRecorder collects the uses of secret keys for their last_used_at,
// keeping at most one write a minute (Every) per key: Used is a map lookup
// on the request path, and Take hands the pending uses to one batched
// write. It is safe for concurrent use.
type UsageRecorder struct {
	// Every is the least time between two recorded uses of one key; 0
	// means a minute.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	pending  map[KeyRef]time.Time // uses not yet taken
	recorded map[KeyRef]time.Time // last use recorded (pending or taken)
}

// maxPending bounds the recorder's memory; past it, uses are dropped until
// the next Take (last_used_at is advisory).
const maxPending = 200_000

func (r *UsageRecorder) every() time.Duration {
	if r.Every <= 0 {
		return time.Minute
	}
	return r.Every
}

func (r *UsageRecorder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Used records a use of the key now, unless one was recorded less than
// Every ago. It never blocks on I/O.
func (r *UsageRecorder) Used(org, id string) {
	now := r.now()
	k := KeyRef{org, id}
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.recorded[k]; ok && now.Sub(last) < r.every() {
		return
	}
	if len(r.pending) >= maxPending {
		return
	}
	if r.pending == nil {
		r.pending = make(map[KeyRef]time.Time)
	}
	if r.recorded == nil {
		r.recorded = make(map[KeyRef]time.Time)
	}
	r.pending[k] = now
	r.recorded[k] = now
}

// Take returns the uses recorded since the last Take and forgets them.
func (r *UsageRecorder) Take() map[KeyRef]time.Time {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending
	r.pending = nil
	for k, t := range r.recorded {
		if now.Sub(t) >= r.every() {
			delete(r.recorded, k)
		}
	}
	return p
}

// Putback returns uses a failed write could not store, so the next Take
// has them again (newer uses win).
func (r *UsageRecorder) Putback(p map[KeyRef]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range p {
		if len(r.pending) >= maxPending {
			return
		}
		if r.pending == nil {
			r.pending = make(map[KeyRef]time.Time)
		}
		if cur, ok := r.pending[k]; !ok || cur.Before(t) {
			r.pending[k] = t
		}
	}
}
