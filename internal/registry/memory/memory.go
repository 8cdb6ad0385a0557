// Package memory is the tenant registry held in process memory: the
// embedded development tenant's registry, writable through the admin API
// and lost at exit. It passes the same conformance suite as the PostgreSQL
// registry.
package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// MaxAuditEvents bounds the audit trail kept in memory; the oldest events
// go first.
const MaxAuditEvents = 10_000

// Registry is the in-memory registry. The zero value is not usable; use New.
type Registry struct {
	registry.Holder

	now   func() time.Time
	usage registry.UsageRecorder

	mu      sync.Mutex
	orgs    map[string]*registry.OrgData
	asm     registry.Assembler
	version int64
	audit   []registry.AuditEvent
	auditID int64
	// deleted holds when each org id was last deleted, while it is in
	// registry.IDQuarantine; older entries are pruned at the next delete.
	deleted map[string]time.Time
}

var _ registry.Registry = (*Registry)(nil)

// Options tune a Registry.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns an empty registry.
func New(opt Options) *Registry {
	r := &Registry{now: opt.Now, orgs: make(map[string]*registry.OrgData), deleted: make(map[string]time.Time)}
	if r.now == nil {
		r.now = time.Now
	}
	r.usage.Now = r.now
	r.Publish(registry.Empty())
	return r
}

// Kind is "memory".
func (r *Registry) Kind() string { return "memory" }

// Run returns when ctx ends: there is nothing to follow.
func (r *Registry) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close does nothing.
func (r *Registry) Close() error { return nil }

// Check is always nil: the source is in process.
func (r *Registry) Check() error { return nil }

// Age is always 0: the source is in process.
func (r *Registry) Age() time.Duration { return 0 }

// Used records a key's use for its last_used_at.
func (r *Registry) Used(org, keyID string) { r.usage.Used(org, keyID) }

func (r *Registry) stamp() time.Time { return r.now().UTC().Truncate(time.Microsecond) }

// commit puts the changed orgs (nil: deleted) in force, or changes nothing
// and returns the error when the snapshot refuses one of them. Callers
// hold r.mu.
func (r *Registry) commit(changed map[string]*registry.OrgData) error {
	trial := r.asm
	s, err := trial.Apply(changed, r.version+1)
	if err != nil {
		return asConflict(err)
	}
	r.asm = trial
	r.version++
	for id, d := range changed {
		if d == nil {
			delete(r.orgs, id)
		} else {
			r.orgs[id] = d
		}
	}
	r.Publish(s)
	return nil
}

// asConflict turns a rule spanning orgs that the snapshot refused into
// ErrConflict (the PostgreSQL registry's unique constraints say the same).
func asConflict(err error) error {
	return fmt.Errorf("%w: %v", registry.ErrConflict, err)
}

func (r *Registry) record(ctx context.Context, org string, action registry.Action, target string, detail map[string]any) {
	a := registry.ActorFrom(ctx)
	r.auditID++
	r.audit = append(r.audit, registry.AuditEvent{ID: r.auditID, At: r.stamp(), Actor: a.Subject, RequestID: a.RequestID,
		Org: org, Action: action, Target: target, Detail: detail})
	if len(r.audit) > MaxAuditEvents {
		r.audit = slices.Delete(r.audit, 0, len(r.audit)-MaxAuditEvents)
	}
}

// org returns the org's data, or ErrNotFound. Callers hold r.mu.
func (r *Registry) org(id string) (*registry.OrgData, error) {
	d := r.orgs[id]
	if d == nil {
		return nil, registry.NotFound("org", id)
	}
	return d, nil
}

// quarantined is registry.Quarantined when the org id was deleted less
// than registry.IDQuarantine ago, else nil. Callers hold r.mu.
func (r *Registry) quarantined(id string) error {
	at, ok := r.deleted[id]
	if ok && r.now().Before(at.Add(registry.IDQuarantine)) {
		return registry.Quarantined(id, at)
	}
	return nil
}

// CreateOrg adds an org. An id deleted less than registry.IDQuarantine ago
// is ErrConflict.
func (r *Registry) CreateOrg(ctx context.Context, o registry.OrgSpec) (registry.Org, error) {
	if err := registry.CheckOrg(o); err != nil {
		return registry.Org{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.orgs[o.ID] != nil {
		return registry.Org{}, fmt.Errorf("%w: org %q", registry.ErrConflict, o.ID)
	}
	if err := r.quarantined(o.ID); err != nil {
		return registry.Org{}, err
	}
	now := r.stamp()
	d := &registry.OrgData{Org: registry.Org{ID: o.ID, Tier: o.Tier, RatePerMinute: o.RatePerMinute,
		AllowDemoRooms: o.AllowDemoRooms, CreatedAt: now, UpdatedAt: now}}
	if err := r.commit(map[string]*registry.OrgData{o.ID: d}); err != nil {
		return registry.Org{}, err
	}
	r.record(ctx, o.ID, registry.ActionOrgCreate, "", map[string]any{"tier": o.Tier, "rate_per_minute": o.RatePerMinute, "allow_demo_rooms": o.AllowDemoRooms})
	return d.Org, nil
}

// GetOrg returns an org.
func (r *Registry) GetOrg(ctx context.Context, id string) (registry.Org, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.org(id)
	if err != nil {
		return registry.Org{}, err
	}
	return d.Org, nil
}

// ListOrgs pages through the orgs in id order.
func (r *Registry) ListOrgs(ctx context.Context, p registry.Page) ([]registry.Org, string, error) {
	limit, after, err := p.OrgPage()
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := slices.Sorted(maps.Keys(r.orgs))
	i := sort.SearchStrings(ids, after)
	if i < len(ids) && ids[i] == after {
		i++
	}
	out := []registry.Org{}
	for ; i < len(ids) && len(out) < limit; i++ {
		out = append(out, r.orgs[ids[i]].Org)
	}
	next := ""
	if i < len(ids) {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// UpdateOrg changes the fields the patch sets.
func (r *Registry) UpdateOrg(ctx context.Context, id string, p registry.OrgPatch) (registry.Org, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(id)
	if err != nil {
		return registry.Org{}, err
	}
	spec, detail := registry.ApplyPatch(cur.Org, p)
	if err := registry.CheckOrg(spec); err != nil {
		return registry.Org{}, err
	}
	d := cur.Clone()
	d.Org.Tier, d.Org.RatePerMinute, d.Org.AllowDemoRooms = spec.Tier, spec.RatePerMinute, spec.AllowDemoRooms
	d.Org.UpdatedAt = r.stamp()
	if err := r.commit(map[string]*registry.OrgData{id: d}); err != nil {
		return registry.Org{}, err
	}
	r.record(ctx, id, registry.ActionOrgUpdate, "", detail)
	return d.Org, nil
}

// DeleteOrg removes an org and everything in it, and quarantines its id
// for registry.IDQuarantine.
func (r *Registry) DeleteOrg(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.org(id); err != nil {
		return err
	}
	if err := r.commit(map[string]*registry.OrgData{id: nil}); err != nil {
		return err
	}
	now := r.now()
	for old, at := range r.deleted {
		if !now.Before(at.Add(registry.IDQuarantine)) {
			delete(r.deleted, old)
		}
	}
	r.deleted[id] = now
	r.record(ctx, id, registry.ActionOrgDelete, "", nil)
	return nil
}

// PutAgent creates or replaces an agent.
func (r *Registry) PutAgent(ctx context.Context, org string, a config.Agent) (registry.Agent, bool, error) {
	if err := registry.CheckAgent(a); err != nil {
		return registry.Agent{}, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return registry.Agent{}, false, err
	}
	d := cur.Clone()
	now := r.stamp()
	spec := registry.AgentSpec(a)
	old := d.Agent(a.ID)
	created := old == nil
	var dropped []string
	if created {
		d.Agents = append(d.Agents, registry.AgentData{Spec: spec, CreatedAt: now, UpdatedAt: now})
	} else {
		old.Spec, old.UpdatedAt = spec, now
		if spec.Public == nil {
			for _, k := range old.Keys {
				dropped = append(dropped, k.ID)
			}
			old.Keys = nil
		}
	}
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return registry.Agent{}, false, err
	}
	action := registry.ActionAgentReplace
	if created {
		action = registry.ActionAgentCreate
	}
	detail := registry.AgentDetail(spec)
	if len(dropped) > 0 {
		detail["publishable_keys_deleted"] = dropped
	}
	r.record(ctx, org, action, "agents/"+a.ID, detail)
	return d.Agent(a.ID).View(), created, nil
}

// GetAgent returns an agent.
func (r *Registry) GetAgent(ctx context.Context, org, id string) (registry.Agent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.org(org)
	if err != nil {
		return registry.Agent{}, err
	}
	return d.AgentView(id)
}

// ListAgents lists the org's agents.
func (r *Registry) ListAgents(ctx context.Context, org string) ([]registry.Agent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.org(org)
	if err != nil {
		return nil, err
	}
	return d.AgentViews(), nil
}

// DeleteAgent removes an agent and its publishable keys.
func (r *Registry) DeleteAgent(ctx context.Context, org, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return err
	}
	if cur.Agent(id) == nil {
		return registry.NotFound("agent", id)
	}
	d := cur.Clone()
	d.Agents = slices.DeleteFunc(d.Agents, func(a registry.AgentData) bool { return a.Spec.ID == id })
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return err
	}
	r.record(ctx, org, registry.ActionAgentDelete, "agents/"+id, nil)
	return nil
}

// CreatePublishableKey makes a publishable key for an agent in public mode.
func (r *Registry) CreatePublishableKey(ctx context.Context, org, agent string, env apikey.Env) (registry.PublishableKey, string, error) {
	env, err := registry.KeyEnv(env)
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	if a := cur.Agent(agent); a == nil {
		return registry.PublishableKey{}, "", registry.NotFound("agent", agent)
	} else if err := registry.CanAddPublishableKey(a); err != nil {
		return registry.PublishableKey{}, "", err
	}
	key, err := apikey.New(apikey.Publishable, env)
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	d := cur.Clone()
	a := d.Agent(agent)
	pk := registry.PublishableKeyData{PublishableKey: registry.PublishableKey{ID: registry.NewPublishableKeyID(), CreatedAt: r.stamp()}, Hash: apikey.Hash(key)}
	a.Keys = append(a.Keys, pk)
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return registry.PublishableKey{}, "", err
	}
	r.record(ctx, org, registry.ActionPubKeyCreate, "agents/"+agent+"/publishable-keys/"+pk.ID, map[string]any{"env": string(env)})
	return pk.PublishableKey, key, nil
}

// DeletePublishableKey revokes a publishable key.
func (r *Registry) DeletePublishableKey(ctx context.Context, org, agent, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return err
	}
	a := cur.Agent(agent)
	if a == nil {
		return registry.NotFound("agent", agent)
	}
	if !slices.ContainsFunc(a.Keys, func(k registry.PublishableKeyData) bool { return k.ID == id }) {
		return registry.NotFound("publishable key", id)
	}
	d := cur.Clone()
	da := d.Agent(agent)
	da.Keys = slices.DeleteFunc(da.Keys, func(k registry.PublishableKeyData) bool { return k.ID == id })
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return err
	}
	r.record(ctx, org, registry.ActionPubKeyDelete, "agents/"+agent+"/publishable-keys/"+id, nil)
	return nil
}

// CreateKey makes a secret key.
func (r *Registry) CreateKey(ctx context.Context, org string, k registry.KeySpec) (registry.Key, string, error) {
	if err := registry.CheckKey(k); err != nil {
		return registry.Key{}, "", err
	}
	env, err := registry.KeyEnv(k.Env)
	if err != nil {
		return registry.Key{}, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return registry.Key{}, "", err
	}
	if cur.Key(k.ID) != nil {
		return registry.Key{}, "", fmt.Errorf("%w: key %q", registry.ErrConflict, k.ID)
	}
	if err := registry.CanAddKey(len(cur.Keys)); err != nil {
		return registry.Key{}, "", err
	}
	key, err := apikey.New(apikey.Secret, env)
	if err != nil {
		return registry.Key{}, "", err
	}
	d := cur.Clone()
	kd := registry.NewKeyData(k, apikey.Hash(key), r.stamp())
	d.Keys = append(d.Keys, kd)
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return registry.Key{}, "", err
	}
	r.record(ctx, org, registry.ActionKeyCreate, "keys/"+k.ID, registry.KeyDetail(kd.Key, env))
	return kd.Key, key, nil
}

// ListKeys lists the org's secret keys.
func (r *Registry) ListKeys(ctx context.Context, org string) ([]registry.Key, error) {
	used := r.usage.Take()
	r.mu.Lock()
	defer r.mu.Unlock()
	// Uses are kept with the keys here; nothing to batch.
	for ref, at := range used {
		if d := r.orgs[ref.Org]; d != nil {
			if k := d.Key(ref.ID); k != nil && (k.LastUsedAt == nil || k.LastUsedAt.Before(at)) {
				at := at.UTC().Truncate(time.Microsecond)
				k.LastUsedAt = &at
			}
		}
	}
	d, err := r.org(org)
	if err != nil {
		return nil, err
	}
	out := []registry.Key{}
	for _, k := range d.Keys {
		out = append(out, registry.CloneKey(k.Key))
	}
	return out, nil
}

// RevokeKey revokes a secret key.
func (r *Registry) RevokeKey(ctx context.Context, org, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return err
	}
	k := cur.Key(id)
	if k == nil {
		return registry.NotFound("key", id)
	}
	if k.RevokedAt != nil {
		return nil
	}
	d := cur.Clone()
	now := r.stamp()
	d.Key(id).RevokedAt = &now
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return err
	}
	r.record(ctx, org, registry.ActionKeyRevoke, "keys/"+id, nil)
	return nil
}

// GetJWTIssuers returns the org's JWT issuers.
func (r *Registry) GetJWTIssuers(ctx context.Context, org string) ([]config.JWTIssuer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.org(org)
	if err != nil {
		return nil, err
	}
	return registry.CloneIssuers(d.Issuers), nil
}

// PutJWTIssuers replaces the org's JWT issuers.
func (r *Registry) PutJWTIssuers(ctx context.Context, org string, list []config.JWTIssuer) ([]config.JWTIssuer, error) {
	if err := registry.CheckIssuers(list); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return nil, err
	}
	for i, is := range list {
		for id, other := range r.orgs {
			if id == org {
				continue
			}
			for _, o := range other.Issuers {
				if config.CanonicalIdentifier(o.Issuer) == config.CanonicalIdentifier(is.Issuer) &&
					config.CanonicalIdentifier(o.Audience) == config.CanonicalIdentifier(is.Audience) {
					return nil, fmt.Errorf("%w: jwt_issuers[%d]: the issuer and audience are registered for another org", registry.ErrConflict, i)
				}
			}
		}
	}
	d := cur.Clone()
	d.Issuers = registry.CloneIssuers(list)
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return nil, err
	}
	r.record(ctx, org, registry.ActionIssuersPut, "jwt-issuers", registry.IssuersDetail(list))
	return registry.CloneIssuers(d.Issuers), nil
}

// PutLiveKit sets the org's LiveKit project; its secret is kept in memory.
func (r *Registry) PutLiveKit(ctx context.Context, org string, lk registry.LiveKitSpec) (registry.LiveKit, error) {
	if err := registry.CheckLiveKit(lk); err != nil {
		return registry.LiveKit{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return registry.LiveKit{}, err
	}
	server, _ := config.LiveKitServer(lk.URL) // CheckLiveKit parsed it
	for _, id := range slices.Sorted(maps.Keys(r.orgs)) {
		other := r.orgs[id]
		if id == org || other.LiveKit == nil {
			continue
		}
		if other.LiveKit.APIKey == lk.APIKey {
			return registry.LiveKit{}, fmt.Errorf("%w: livekit.api_key: the API key is another org's project", registry.ErrConflict)
		}
		if s, _ := config.LiveKitServer(other.LiveKit.URL); s == server {
			return registry.LiveKit{}, fmt.Errorf("%w: livekit.url: %s", registry.ErrConflict, config.SameLiveKitServer(server, "another org"))
		}
	}
	d := cur.Clone()
	d.LiveKit = &registry.LiveKitData{URL: lk.URL, APIKey: lk.APIKey, APISecret: registry.Secret(lk.APISecret), UpdatedAt: r.stamp()}
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return registry.LiveKit{}, err
	}
	r.record(ctx, org, registry.ActionLiveKitPut, "livekit", map[string]any{"url": lk.URL, "api_key": lk.APIKey})
	return d.LiveKit.View(), nil
}

// GetLiveKit returns the org's LiveKit project without its secret.
func (r *Registry) GetLiveKit(ctx context.Context, org string) (registry.LiveKit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.org(org)
	if err != nil {
		return registry.LiveKit{}, err
	}
	if d.LiveKit == nil {
		return registry.LiveKit{}, registry.ErrNoLiveKitProject
	}
	return d.LiveKit.View(), nil
}

// DeleteLiveKit returns the org to the default LiveKit project.
func (r *Registry) DeleteLiveKit(ctx context.Context, org string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.org(org)
	if err != nil {
		return err
	}
	if cur.LiveKit == nil {
		return registry.ErrNoLiveKitProject
	}
	d := cur.Clone()
	d.LiveKit = nil
	if err := r.commit(map[string]*registry.OrgData{org: d}); err != nil {
		return err
	}
	r.record(ctx, org, registry.ActionLiveKitDelete, "livekit", nil)
	return nil
}

// Audit pages through the audit trail, newest first.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEvent, string, error) {
	limit, before, err := q.AuditPage()
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []registry.AuditEvent{}
	more := false
	for i := len(r.audit) - 1; i >= 0; i-- {
		e := r.audit[i]
		if (before != 0 && e.ID >= before) || (q.Org != "" && e.Org != q.Org) {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, e)
	}
	next := ""
	if more {
		next = strconv.FormatInt(out[len(out)-1].ID, 10)
	}
	return out, next, nil
}

// Import makes each org of the file as the file says. Creating an org
// whose id was deleted less than registry.IDQuarantine ago is ErrConflict,
// and the file is not imported.
func (r *Registry) Import(ctx context.Context, f *config.File) (*registry.ImportReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stamp()
	plan, err := registry.PlanImport(f, func(id string) *registry.OrgData { return r.orgs[id] }, now)
	if err != nil {
		return nil, err
	}
	for _, id := range plan.Report.Created {
		if err := r.quarantined(id); err != nil {
			return nil, err
		}
	}
	plan.Report.Untouched = registry.Untouched(slices.Sorted(maps.Keys(r.orgs)), f)
	if len(plan.Changed) == 0 {
		return plan.Report, nil
	}
	trial := r.asm
	if _, err := trial.Apply(plan.Changed, r.version+1); err != nil {
		return nil, registry.ImportConflict(err)
	}
	if err := r.commit(plan.Changed); err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(plan.Changed)) {
		r.record(ctx, id, registry.ActionImport, "", plan.Details[id])
	}
	return plan.Report, nil
}

// Export returns the registry as a tenants file.
func (r *Registry) Export(ctx context.Context) (*config.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &config.File{Orgs: []config.Org{}}
	for _, id := range slices.Sorted(maps.Keys(r.orgs)) {
		f.Orgs = append(f.Orgs, r.orgs[id].ExportOrg())
	}
	return f, nil
}

// Seed puts a checked tenants file in the registry without audit events:
// how the embedded development tenant starts.
func (r *Registry) Seed(t *config.Tenants) error {
	f := &config.File{}
	for _, id := range t.Orgs() {
		f.Orgs = append(f.Orgs, *t.Org(id))
	}
	_, err := r.Import(registry.WithActor(context.Background(), registry.Actor{Subject: "seed"}), f)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.audit, r.auditID = nil, 0
	return nil
}
