// Package file is the tenant registry read from a tenants file
// (BROKER_CONFIG): config.Holder's reloads (on SIGHUP and when the content
// changes) behind the registry interface. It is read-only: every write
// returns registry.ErrReadOnly (409 registry_read_only), while reads show
// what the file says.
package file

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// Options tune a Registry.
type Options struct {
	Log *slog.Logger
	// OnReload is called after every reload attempt (the metrics'
	// voicebroker_config_stale and reload counter).
	OnReload func(ok bool)
	// Interval is how often the file is checked for changes; 0 means 2s.
	Interval time.Duration
	// HUP forces a reload on each value; nil means SIGHUP.
	HUP <-chan os.Signal
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Checks must accept the tenants, at start and on every reload (what
	// lies outside the file, such as API secrets naming an org).
	Checks []func(*config.Tenants) error
}

// Registry is the tenants file as a read-only registry.
type Registry struct {
	registry.Holder

	file  *config.Holder
	opt   Options
	usage registry.UsageRecorder

	mu       sync.Mutex
	version  int64
	loadedAt time.Time
	lastUsed map[registry.KeyRef]time.Time
}

var _ registry.Registry = (*Registry)(nil)

// Open reads and checks the file; an error means the broker must not
// start.
func Open(path string, opt Options) (*Registry, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Interval <= 0 {
		opt.Interval = 2 * time.Second
	}
	r := &Registry{opt: opt, lastUsed: map[registry.KeyRef]time.Time{}}
	r.usage.Now = opt.Now
	h, err := config.NewHolder(path, opt.Log, r.reloaded, opt.Checks...)
	if err != nil {
		return nil, err
	}
	r.file = h
	r.publish()
	return r, nil
}

// Static returns a read-only registry that serves t and never reloads.
func Static(t *config.Tenants) *Registry {
	r := &Registry{opt: Options{Now: time.Now}, file: config.StaticHolder(t), lastUsed: map[registry.KeyRef]time.Time{}}
	r.usage.Now = time.Now
	r.publish()
	return r
}

// File returns the config.Holder underneath (its path, a forced reload).
func (r *Registry) File() *config.Holder { return r.file }

func (r *Registry) reloaded(ok bool) {
	if ok {
		r.publish()
	}
	if r.opt.OnReload != nil {
		r.opt.OnReload(ok)
	}
}

func (r *Registry) publish() {
	r.mu.Lock()
	r.version++
	r.loadedAt = r.opt.Now().UTC().Truncate(time.Microsecond)
	v := r.version
	r.mu.Unlock()
	r.Publish(registry.FileSnapshot(r.file.Current(), v))
}

// Kind is "file".
func (r *Registry) Kind() string { return "file" }

// Run polls the file every Interval and reloads on HUP (SIGHUP when HUP
// is nil) until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	hup := r.opt.HUP
	if hup == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		hup = c
	}
	r.file.Watch(ctx, r.opt.Interval, hup)
	return nil
}

// Close does nothing.
func (r *Registry) Close() error { return nil }

// Check is always nil: a file that fails to reload keeps the previous one
// in force (voicebroker_config_stale says so).
func (r *Registry) Check() error { return nil }

// Age is always 0.
func (r *Registry) Age() time.Duration { return 0 }

// Used records a key's use; last_used_at lives in memory only.
func (r *Registry) Used(org, keyID string) { r.usage.Used(org, keyID) }

// data returns the org as registry data, stamped with the load time.
func (r *Registry) data(id string) (*registry.OrgData, error) {
	o := r.Current().Org(id)
	if o == nil {
		return nil, registry.NotFound("org", id)
	}
	r.mu.Lock()
	at := r.loadedAt
	r.mu.Unlock()
	d, err := registry.OrgDataFromFile(*o, at)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// GetOrg returns an org of the file.
func (r *Registry) GetOrg(ctx context.Context, id string) (registry.Org, error) {
	d, err := r.data(id)
	if err != nil {
		return registry.Org{}, err
	}
	return d.Org, nil
}

// ListOrgs pages through the file's orgs in id order.
func (r *Registry) ListOrgs(ctx context.Context, p registry.Page) ([]registry.Org, string, error) {
	limit, after, err := p.OrgPage()
	if err != nil {
		return nil, "", err
	}
	ids := append([]string(nil), r.Current().Orgs()...)
	slices.Sort(ids)
	out := []registry.Org{}
	next := ""
	for _, id := range ids {
		if id <= after {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		d, err := r.data(id)
		if err != nil {
			return nil, "", err
		}
		out = append(out, d.Org)
	}
	return out, next, nil
}

// GetAgent returns an agent of the file.
func (r *Registry) GetAgent(ctx context.Context, org, id string) (registry.Agent, error) {
	d, err := r.data(org)
	if err != nil {
		return registry.Agent{}, err
	}
	return d.AgentView(id)
}

// ListAgents lists the org's agents.
func (r *Registry) ListAgents(ctx context.Context, org string) ([]registry.Agent, error) {
	d, err := r.data(org)
	if err != nil {
		return nil, err
	}
	return d.AgentViews(), nil
}

// ListKeys lists the org's keys, with uses seen by this process.
func (r *Registry) ListKeys(ctx context.Context, org string) ([]registry.Key, error) {
	d, err := r.data(org)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ref, at := range r.usage.Take() {
		r.lastUsed[ref] = at.UTC().Truncate(time.Microsecond)
	}
	out := []registry.Key{}
	for _, k := range d.Keys {
		if at, ok := r.lastUsed[registry.KeyRef{Org: org, ID: k.ID}]; ok {
			k.LastUsedAt = &at
		}
		out = append(out, registry.CloneKey(k.Key))
	}
	return out, nil
}

// GetJWTIssuers returns the org's JWT issuers.
func (r *Registry) GetJWTIssuers(ctx context.Context, org string) ([]config.JWTIssuer, error) {
	d, err := r.data(org)
	if err != nil {
		return nil, err
	}
	return registry.CloneIssuers(d.Issuers), nil
}

// GetLiveKit returns the org's own LiveKit project as the file names it,
// without its secret; ErrNotFound when the org uses the default project.
func (r *Registry) GetLiveKit(ctx context.Context, org string) (registry.LiveKit, error) {
	d, err := r.data(org)
	if err != nil {
		return registry.LiveKit{}, err
	}
	if d.LiveKit == nil {
		return registry.LiveKit{}, registry.ErrNoLiveKitProject
	}
	return d.LiveKit.View(), nil
}

// Audit is empty: the file's history is its version control.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEvent, string, error) {
	if _, _, err := q.AuditPage(); err != nil {
		return nil, "", err
	}
	return []registry.AuditEvent{}, "", nil
}

// Export returns the file's tenants.
func (r *Registry) Export(ctx context.Context) (*config.File, error) {
	t := r.Current()
	f := &config.File{Orgs: []config.Org{}}
	ids := append([]string(nil), t.Orgs()...)
	slices.Sort(ids)
	for _, id := range ids {
		d, err := r.data(id)
		if err != nil {
			return nil, err
		}
		o := d.FileOrg()
		if l := t.Org(id).LiveKit; l != nil {
			// As the file names the secret: its variable or file.
			o.LiveKit = &config.OrgLiveKit{URL: l.URL, APIKey: l.APIKey, APISecretEnv: l.APISecretEnv, APISecretFile: l.APISecretFile}
		}
		f.Orgs = append(f.Orgs, o)
	}
	return f, nil
}

// The writes: the file is the source; change it instead.

func (r *Registry) CreateOrg(context.Context, registry.OrgSpec) (registry.Org, error) {
	return registry.Org{}, registry.ErrReadOnly
}
func (r *Registry) UpdateOrg(context.Context, string, registry.OrgPatch) (registry.Org, error) {
	return registry.Org{}, registry.ErrReadOnly
}
func (r *Registry) DeleteOrg(context.Context, string) error { return registry.ErrReadOnly }
func (r *Registry) PutAgent(context.Context, string, config.Agent) (registry.Agent, bool, error) {
	return registry.Agent{}, false, registry.ErrReadOnly
}
func (r *Registry) DeleteAgent(context.Context, string, string) error { return registry.ErrReadOnly }
func (r *Registry) CreatePublishableKey(context.Context, string, string, apikey.Env) (registry.PublishableKey, string, error) {
	return registry.PublishableKey{}, "", registry.ErrReadOnly
}
func (r *Registry) DeletePublishableKey(context.Context, string, string, string) error {
	return registry.ErrReadOnly
}
func (r *Registry) CreateKey(context.Context, string, registry.KeySpec) (registry.Key, string, error) {
	return registry.Key{}, "", registry.ErrReadOnly
}
func (r *Registry) RevokeKey(context.Context, string, string) error { return registry.ErrReadOnly }
func (r *Registry) PutJWTIssuers(context.Context, string, []config.JWTIssuer) ([]config.JWTIssuer, error) {
	return nil, registry.ErrReadOnly
}
func (r *Registry) PutLiveKit(context.Context, string, registry.LiveKitSpec) (registry.LiveKit, error) {
	return registry.LiveKit{}, registry.ErrReadOnly
}
func (r *Registry) DeleteLiveKit(context.Context, string) error { return registry.ErrReadOnly }
func (r *Registry) Import(context.Context, *config.File) (*registry.ImportReport, error) {
	return nil, registry.ErrReadOnly
}
