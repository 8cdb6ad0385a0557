package registry

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// The functions here are shared by the writable registries, so that they
// behave alike (the conformance suite holds them to it).

// ApplyPatch returns the org as the patch leaves it, and the audit detail
// of what the patch sets.
func ApplyPatch(o Org, p OrgPatch) (OrgSpec, map[string]any) {
	s := OrgSpec{ID: o.ID, Tier: o.Tier, RatePerMinute: o.RatePerMinute, AllowDemoRooms: o.AllowDemoRooms}
	detail := map[string]any{}
	if p.Tier != nil {
		s.Tier = *p.Tier
		detail["tier"] = s.Tier
		// Leaving enterprise drops its rate, which only enterprise may set.
		if s.Tier != config.TierEnterprise && p.RatePerMinute == nil {
			s.RatePerMinute = 0
		}
	}
	if p.RatePerMinute != nil {
		s.RatePerMinute = *p.RatePerMinute
		detail["rate_per_minute"] = s.RatePerMinute
	}
	if p.AllowDemoRooms != nil {
		s.AllowDemoRooms = *p.AllowDemoRooms
		detail["allow_demo_rooms"] = s.AllowDemoRooms
	}
	return s, detail
}

// AgentSpec returns the agent as PutAgent keeps it: a copy, its public
// mode without key hashes.
func AgentSpec(a config.Agent) config.Agent {
	a = cloneAgent(a)
	if a.Public != nil {
		a.Public.KeyHash, a.Public.Keys = "", nil
	}
	return a
}

// AgentDetail is the audit detail of an agent write.
func AgentDetail(a config.Agent) map[string]any {
	d := map[string]any{"channels": slices.Clone(a.Channels), "public": a.Public != nil}
	if a.Server != "" {
		d["server"] = a.Server
	}
	if a.Public != nil {
		d["allowed_origins"] = slices.Clone(a.Public.AllowedOrigins)
	}
	return d
}

// KeyEnv checks a key's environment; "" is live.
func KeyEnv(e apikey.Env) (apikey.Env, error) {
	switch e {
	case "":
		return apikey.Live, nil
	case apikey.Live, apikey.Test:
		return e, nil
	}
	return "", &ValidationError{Problems: []string{`env: "live" or "test"`}}
}

// CanAddPublishableKey says whether the agent may get another publishable
// key: it must be in public mode and below MaxPublicKeys.
func CanAddPublishableKey(a *AgentData) error {
	if a.Spec.Public == nil {
		return &ValidationError{Problems: []string{"public: the agent has no public mode; give it public.allowed_origins first"}}
	}
	if len(a.Keys) >= MaxPublicKeys {
		return &ValidationError{Problems: []string{fmt.Sprintf("publishable keys: at most %d per agent; delete one first", MaxPublicKeys)}}
	}
	return nil
}

// CanAddKey is nil when an org holding n secret keys may get one more.
func CanAddKey(n int) error {
	if n >= MaxKeys {
		return &ValidationError{Problems: []string{fmt.Sprintf(
			"keys: at most %d per org, revoked ones included; an operator drops revoked keys by deleting them from a broker tenants export and importing it", MaxKeys)}}
	}
	return nil
}

// NewKeyData is a new secret key with its hash, made at now.
func NewKeyData(k KeySpec, hash string, now time.Time) KeyData {
	var exp *time.Time
	if k.ExpiresAt != nil {
		e := k.ExpiresAt.UTC().Truncate(time.Microsecond)
		exp = &e
	}
	return KeyData{Key: Key{ID: k.ID, Scopes: nonNil(k.Scopes), AllowedIPs: nonNil(k.AllowedIPs), ExpiresAt: exp, CreatedAt: now}, Hash: hash}
}

// KeyDetail is the audit detail of a new key.
func KeyDetail(k Key, env apikey.Env) map[string]any {
	d := map[string]any{"scopes": slices.Clone(k.Scopes), "env": string(env)}
	if len(k.AllowedIPs) > 0 {
		d["allowed_ips"] = slices.Clone(k.AllowedIPs)
	}
	if k.ExpiresAt != nil {
		d["expires_at"] = k.ExpiresAt.Format(time.RFC3339)
	}
	return d
}

// CloneKey copies a key view.
func CloneKey(k Key) Key {
	k.Scopes = slices.Clone(k.Scopes)
	k.AllowedIPs = slices.Clone(k.AllowedIPs)
	return k
}

// CloneIssuers copies a list of issuers; never nil.
func CloneIssuers(list []config.JWTIssuer) []config.JWTIssuer {
	out := make([]config.JWTIssuer, 0, len(list))
	for _, is := range list {
		out = append(out, cloneIssuer(is))
	}
	return out
}

// IssuersDetail is the audit detail of a jwt_issuers write.
func IssuersDetail(list []config.JWTIssuer) map[string]any {
	var pairs []string
	for _, is := range list {
		pairs = append(pairs, is.Issuer+" "+is.Audience)
	}
	return map[string]any{"issuers": pairs}
}

// ImportPlan is what an import will change.
type ImportPlan struct {
	// Changed holds each org to write, as it will be.
	Changed map[string]*OrgData
	// Details is the audit detail of each changed org.
	Details map[string]map[string]any
	Report  *ImportReport
}

// PlanImport compares a checked tenants file with the registry (cur looks
// an org up) and returns what to write.
func PlanImport(f *config.File, cur func(id string) *OrgData, now time.Time) (*ImportPlan, error) {
	p := &ImportPlan{Changed: map[string]*OrgData{}, Details: map[string]map[string]any{}, Report: &ImportReport{}}
	var problems []string
	for i, o := range f.Orgs {
		from, err := OrgDataFromFile(o, now)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, pr := range ve.Problems {
					problems = append(problems, fmt.Sprintf("orgs[%d].%s", i, pr))
				}
				continue
			}
			return nil, err
		}
		Normalize(from)
		old := cur(o.ID)
		merged, changed := MergeImport(old, from, now)
		switch {
		case old == nil:
			p.Report.Created = append(p.Report.Created, o.ID)
			p.Details[o.ID] = map[string]any{"created": true}
		case changed:
			p.Report.Changed = append(p.Report.Changed, o.ID)
			p.Details[o.ID] = map[string]any{"changed": true}
		default:
			p.Report.Unchanged = append(p.Report.Unchanged, o.ID)
			continue
		}
		p.Changed[o.ID] = merged
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return p, nil
}

// Untouched lists the ids of all that the file does not name.
func Untouched(all []string, f *config.File) []string {
	in := map[string]bool{}
	for _, o := range f.Orgs {
		in[o.ID] = true
	}
	var out []string
	for _, id := range all {
		if !in[id] {
			out = append(out, id)
		}
	}
	return out
}

// ImportConflict is the error of an import that breaks a rule spanning
// orgs with the registry's other orgs (Assembler.Apply's error).
func ImportConflict(err error) error {
	return &ValidationError{Problems: []string{"the file conflicts with orgs already in the registry: " + err.Error()}}
}
