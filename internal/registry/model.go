package registry

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/voicebroker/voicebroker/config"
)

// OrgData is everything the registry holds for one org, hashes and
// secrets included: what the writable registries keep and what snapshots
// are built from. It never leaves the registry through the admin API.
type OrgData struct {
	Org     Org
	Keys    []KeyData
	Agents  []AgentData
	Issuers []config.JWTIssuer
	LiveKit *LiveKitData
}

// KeyData is a secret key with its hash.
type KeyData struct {
	Key
	Hash string
}

// AgentData is an agent with its publishable keys' hashes.
type AgentData struct {
	Spec      config.Agent
	Keys      []PublishableKeyData
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PublishableKeyData is a publishable key with its hash.
type PublishableKeyData struct {
	PublishableKey
	Hash string
}

// LiveKitData is an org's LiveKit project with its secret, in memory.
type LiveKitData struct {
	URL       string
	APIKey    string
	APISecret Secret
	UpdatedAt time.Time
}

// LiveKitProject is an org's own LiveKit project as the request path uses
// it: tokens for the org are signed with its secret, and webhooks signed
// with its API key are verified with it.
type LiveKitProject struct {
	Org       string
	URL       string
	APIKey    string
	APISecret Secret
}

// Clone returns a deep copy of d, so a writer can change the copy while
// readers hold d.
func (d *OrgData) Clone() *OrgData {
	c := &OrgData{Org: d.Org}
	for _, k := range d.Keys {
		k.Scopes = slices.Clone(k.Scopes)
		k.AllowedIPs = slices.Clone(k.AllowedIPs)
		c.Keys = append(c.Keys, k)
	}
	for _, a := range d.Agents {
		a.Spec = cloneAgent(a.Spec)
		a.Keys = slices.Clone(a.Keys)
		c.Agents = append(c.Agents, a)
	}
	for _, is := range d.Issuers {
		c.Issuers = append(c.Issuers, cloneIssuer(is))
	}
	if d.LiveKit != nil {
		lk := *d.LiveKit
		c.LiveKit = &lk
	}
	return c
}

// Key returns the org's key with that id, or nil.
func (d *OrgData) Key(id string) *KeyData {
	for i := range d.Keys {
		if d.Keys[i].ID == id {
			return &d.Keys[i]
		}
	}
	return nil
}

// Agent returns the org's agent with that id, or nil.
func (d *OrgData) Agent(id string) *AgentData {
	for i := range d.Agents {
		if d.Agents[i].Spec.ID == id {
			return &d.Agents[i]
		}
	}
	return nil
}

// AgentView returns the agent with that id as the admin API shows it, or
// ErrNotFound naming it.
func (d *OrgData) AgentView(id string) (Agent, error) {
	a := d.Agent(id)
	if a == nil {
		return Agent{}, NotFound("agent", id)
	}
	return a.View(), nil
}

// AgentViews returns the org's agents as the admin API shows them.
func (d *OrgData) AgentViews() []Agent {
	out := make([]Agent, 0, len(d.Agents))
	for i := range d.Agents {
		out = append(out, d.Agents[i].View())
	}
	return out
}

// View returns the agent as the admin API shows it.
func (a *AgentData) View() Agent {
	v := Agent{Spec: cloneAgent(a.Spec), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, PublishableKeys: []PublishableKey{}}
	for _, k := range a.Keys {
		v.PublishableKeys = append(v.PublishableKeys, k.PublishableKey)
	}
	return v
}

// View returns the project as the admin API shows it.
func (l *LiveKitData) View() LiveKit {
	return LiveKit{URL: l.URL, APIKey: l.APIKey, SecretSet: l.APISecret != "", UpdatedAt: l.UpdatedAt}
}

// FileOrg returns the org as a tenants file stanza: what snapshots are
// built from and what export writes. Publishable keys are listed by id
// under public.keys (an empty list when all were revoked); a revoked key
// is `revoked: true`. The LiveKit project is not part of it: snapshots
// carry it beside the tenants (Snapshot.LiveKit).
func (d *OrgData) FileOrg() config.Org {
	o := config.Org{ID: d.Org.ID, Tier: d.Org.Tier, RatePerMinute: d.Org.RatePerMinute, AllowDemoRooms: d.Org.AllowDemoRooms}
	for _, k := range d.Keys {
		o.Keys = append(o.Keys, config.Key{
			ID: k.ID, Hash: k.Hash, Scopes: toScopes(k.Scopes), AllowedIPs: allowedIPs(k.AllowedIPs),
			ExpiresAt: k.ExpiresAt, Revoked: k.RevokedAt != nil,
		})
	}
	for _, is := range d.Issuers {
		o.JWTIssuers = append(o.JWTIssuers, cloneIssuer(is))
	}
	for _, a := range d.Agents {
		spec := cloneAgent(a.Spec)
		if spec.Public != nil {
			spec.Public.KeyHash = ""
			spec.Public.Keys = []config.PublishableKey{}
			for _, k := range a.Keys {
				spec.Public.Keys = append(spec.Public.Keys, config.PublishableKey{ID: k.ID, Hash: k.Hash})
			}
		}
		o.Agents = append(o.Agents, spec)
	}
	return o
}

// ExportOrg is FileOrg with the org's LiveKit project as `broker tenants
// export` writes it: url and api_key, and for the secret, which never
// leaves the registry, api_secret_env naming config.LiveKitSecretEnvName of
// the org (set that variable before serving or importing the file).
func (d *OrgData) ExportOrg() config.Org {
	o := d.FileOrg()
	if d.LiveKit != nil {
		o.LiveKit = &config.OrgLiveKit{URL: d.LiveKit.URL, APIKey: d.LiveKit.APIKey, APISecretEnv: config.LiveKitSecretEnvName(d.Org.ID)}
	}
	return o
}

// DefaultPublishableKeyID is the id an agent's single public.key_hash gets
// when a tenants file is imported.
const DefaultPublishableKeyID = "default"

// OrgDataFromFile turns a checked tenants file stanza into registry data,
// stamped now: an agent's public.key_hash becomes its publishable key
// "default", a revoked key is revoked now, and the livekit block becomes
// the org's project with its secret (read at Build, or now from
// api_secret_env or api_secret_file when o was only decoded). It is how
// files are imported and how the file and memory registries hold their
// tenants.
func OrgDataFromFile(o config.Org, now time.Time) (*OrgData, error) {
	d := &OrgData{Org: Org{ID: o.ID, Tier: o.Tier, RatePerMinute: o.RatePerMinute, AllowDemoRooms: o.AllowDemoRooms,
		CreatedAt: now, UpdatedAt: now}}
	if l := o.LiveKit; l != nil {
		secret := l.Secret()
		if secret == "" {
			s, err := l.ReadSecret()
			if err != nil {
				var ve *config.ValidationError
				if errors.As(err, &ve) {
					return nil, &ValidationError{Problems: ve.Problems}
				}
				return nil, err
			}
			secret = s
		}
		d.LiveKit = &LiveKitData{URL: l.URL, APIKey: l.APIKey, APISecret: Secret(secret), UpdatedAt: now}
	}
	for _, k := range o.Keys {
		kd := KeyData{Key: Key{ID: k.ID, Scopes: fromScopes(k.Scopes), AllowedIPs: nonNil(k.AllowedIPs), ExpiresAt: k.ExpiresAt, CreatedAt: now}, Hash: k.Hash}
		if k.Revoked {
			kd.RevokedAt = &now
		}
		d.Keys = append(d.Keys, kd)
	}
	for _, is := range o.JWTIssuers {
		d.Issuers = append(d.Issuers, cloneIssuer(is))
	}
	for i, a := range o.Agents {
		ad := AgentData{Spec: cloneAgent(a), CreatedAt: now, UpdatedAt: now}
		if p := ad.Spec.Public; p != nil {
			if p.KeyHash != "" {
				for n, k := range p.Keys {
					if k.ID == DefaultPublishableKeyID {
						return nil, &ValidationError{Problems: []string{fmt.Sprintf(
							"agents[%d].public.keys[%d].id: %q is the id key_hash gets; rename it", i, n, k.ID)}}
					}
				}
				ad.Keys = append(ad.Keys, PublishableKeyData{PublishableKey{ID: DefaultPublishableKeyID, CreatedAt: now}, p.KeyHash})
			}
			for _, k := range p.Keys {
				ad.Keys = append(ad.Keys, PublishableKeyData{PublishableKey{ID: k.ID, CreatedAt: now}, k.Hash})
			}
			p.KeyHash, p.Keys = "", nil
		}
		d.Agents = append(d.Agents, ad)
	}
	return d, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// cloneAgent copies a, so that the copy's lists can be changed. Every
// field is copied, those the tenants file gains later included.
func cloneAgent(a config.Agent) config.Agent {
	c := a
	c.Channels = slices.Clone(a.Channels)
	if a.Public != nil {
		p := *a.Public
		p.Keys = slices.Clone(a.Public.Keys)
		p.AllowedOrigins = slices.Clone(a.Public.AllowedOrigins)
		c.Public = &p
	}
	return c
}

// cloneIssuer copies is, so that the copy's lists can be changed.
func cloneIssuer(is config.JWTIssuer) config.JWTIssuer {
	c := is
	c.Scopes = slices.Clone(is.Scopes)
	return c
}

// toScopes and fromScopes convert between the registry's scope strings
// (its JSON and database form) and the tenants file's typed scopes.
func toScopes(ss []string) []config.Scope {
	out := make([]config.Scope, len(ss))
	for i, s := range ss {
		out[i] = config.Scope(s)
	}
	return out
}

func fromScopes(ss []config.Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// allowedIPs is a key's allowed_ips as the tenants file states it: the
// registry keeps "any address" as an empty list, the file as no list (an
// empty list there is refused, for it reads as "no address").
func allowedIPs(ips []string) []string {
	if len(ips) == 0 {
		return nil
	}
	return slices.Clone(ips)
}
