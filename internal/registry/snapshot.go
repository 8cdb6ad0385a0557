package registry

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/voicebroker/voicebroker/config"
)

// Snapshot is one immutable version of the registry, as every request of a
// replica sees it.
type Snapshot struct {
	// Tenants is the registry as the tenants file's code built and checked
	// it.
	Tenants *config.Tenants
	// Version is the source's version (the database's change counter; a
	// local counter for the file and memory registries).
	Version int64

	liveKit      map[string]*LiveKitProject // by org
	liveKitByKey map[string]*LiveKitProject // by API key
}

// LiveKit returns the org's own LiveKit project, or nil when it uses the
// default one (LIVEKIT_*).
func (s *Snapshot) LiveKit(org string) *LiveKitProject { return s.liveKit[org] }

// LiveKitByAPIKey returns the org project whose API key is key, or nil: how
// the webhook receiver finds the secret that verifies a webhook.
func (s *Snapshot) LiveKitByAPIKey(key string) *LiveKitProject { return s.liveKitByKey[key] }

// LiveKitProjects is how many orgs have their own LiveKit project.
func (s *Snapshot) LiveKitProjects() int { return len(s.liveKit) }

// LiveKitOrgs lists the orgs that have their own LiveKit project, sorted.
func (s *Snapshot) LiveKitOrgs() []string { return slices.Sorted(maps.Keys(s.liveKit)) }

// FileSnapshot is the snapshot of a checked tenants file at version: its
// tenants, and the LiveKit projects its orgs' livekit blocks name, with the
// secrets read when the file was built (config.OrgLiveKit.Secret). The
// file's own checks (config.Build) have made each project's API key unique.
func FileSnapshot(t *config.Tenants, version int64) *Snapshot {
	s := &Snapshot{Tenants: t, Version: version}
	for _, id := range t.Orgs() {
		l := t.Org(id).LiveKit
		if l == nil || l.Secret() == "" {
			continue
		}
		if s.liveKit == nil {
			s.liveKit, s.liveKitByKey = map[string]*LiveKitProject{}, map[string]*LiveKitProject{}
		}
		p := &LiveKitProject{Org: id, URL: l.URL, APIKey: l.APIKey, APISecret: Secret(l.Secret())}
		if s.liveKitByKey[p.APIKey] != nil {
			continue
		}
		s.liveKit[id], s.liveKitByKey[p.APIKey] = p, p
	}
	return s
}

// Empty is the snapshot of a registry with no org.
func Empty() *Snapshot { return &Snapshot{Tenants: &config.Tenants{}} }

// Holder holds the snapshot in force and tells watchers when it changes.
// The zero value holds Empty().
type Holder struct {
	cur     atomic.Pointer[Snapshot]
	mu      sync.Mutex
	changed chan struct{}
}

// Snapshot returns the snapshot in force.
func (h *Holder) Snapshot() *Snapshot {
	if s := h.cur.Load(); s != nil {
		return s
	}
	return Empty()
}

// Current returns the tenants in force.
func (h *Holder) Current() *config.Tenants { return h.Snapshot().Tenants }

// Changed returns a channel closed at the next Publish.
func (h *Holder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.changed
}

// Publish puts s in force and wakes the watchers.
func (h *Holder) Publish(s *Snapshot) {
	h.cur.Store(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
}

// Assembler builds snapshots from OrgData an org at a time: a change to one
// org rebuilds that org only (config.Tenants.Replace), so a registry of
// thousands of orgs follows a change in milliseconds. It is not safe for
// concurrent use; each registry serialises its calls.
type Assembler struct {
	last *Snapshot
}

// Last returns the last snapshot Apply made, or Empty().
func (a *Assembler) Last() *Snapshot {
	if a.last == nil {
		return Empty()
	}
	return a.last
}

// Reset forgets the last snapshot, so the next Apply builds from nothing
// (a full refresh).
func (a *Assembler) Reset() { a.last = nil }

// Apply returns the last snapshot with each org of changed replaced by its
// data (removed when nil), at version. An org whose data fails the tenants
// file's checks, or breaks a rule spanning orgs, is left out of the
// snapshot (its credentials stop working: fail closed) and named in the
// returned error, which never carries a key, hash or secret; the snapshot
// is usable either way.
func (a *Assembler) Apply(changed map[string]*OrgData, version int64) (*Snapshot, error) {
	prev := a.Last()
	parts := make(map[string]*config.Tenants, len(changed))
	lk := maps.Clone(prev.liveKit)
	if lk == nil {
		lk = make(map[string]*LiveKitProject)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(changed)) {
		delete(lk, id)
		d := changed[id]
		if d == nil {
			parts[id] = nil
			continue
		}
		part, err := config.Build(&config.File{Orgs: []config.Org{d.FileOrg()}})
		if err != nil {
			parts[id] = nil
			errs = append(errs, orgError(id, err))
			continue
		}
		parts[id] = part
		if d.LiveKit != nil {
			lk[id] = &LiveKitProject{Org: id, URL: d.LiveKit.URL, APIKey: d.LiveKit.APIKey, APISecret: d.LiveKit.APISecret}
		}
	}
	t, err := prev.Tenants.Replace(parts)
	if err != nil {
		errs = append(errs, err)
	}
	s := &Snapshot{Tenants: t, Version: version, liveKit: make(map[string]*LiveKitProject, len(lk)),
		liveKitByKey: make(map[string]*LiveKitProject, len(lk))}
	// A project whose org was left out, or whose API key or LiveKit server
	// another org's project has, is left out too: any key of a server
	// signs tokens for every room on it.
	byServer := make(map[string]*LiveKitProject, len(lk))
	for _, id := range slices.Sorted(maps.Keys(lk)) {
		p := lk[id]
		if t.Org(id) == nil {
			continue
		}
		if other := s.liveKitByKey[p.APIKey]; other != nil {
			errs = append(errs, &orgErr{org: id, msg: "livekit.api_key: the same API key is the project of org " + other.Org})
			continue
		}
		server, err := config.LiveKitServer(p.URL)
		if err != nil { // config.Build checked the URL: not reached
			errs = append(errs, &orgErr{org: id, msg: "livekit.url: " + err.Error()})
			continue
		}
		if other := byServer[server]; other != nil {
			errs = append(errs, &orgErr{org: id, msg: "livekit.url: " + config.SameLiveKitServer(server, "org "+other.Org)})
			continue
		}
		s.liveKit[id] = p
		s.liveKitByKey[p.APIKey] = p
		byServer[server] = p
	}
	a.last = s
	return s, errors.Join(errs...)
}

type orgErr struct{ org, msg string }

func (e *orgErr) Error() string { return "org " + e.org + " left out of the snapshot: " + e.msg }

func orgError(id string, err error) error {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return &orgErr{org: id, msg: strings.Join(ve.Problems, "; ")}
	}
	return &orgErr{org: id, msg: err.Error()}
}
