package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/voicebroker/voicebroker/config"
)

// Bounds on what one write may carry, beyond the tenants file's rules (the
// file is bounded by its size; the admin API by these).
const (
	MaxAllowedIPs     = 100
	MaxAllowedOrigins = 100
	MaxIssuers        = 20
	MaxPublicKeys     = 10 // publishable keys per agent
	// MaxKeys bounds an org's secret keys, revoked ones included (they
	// are kept for the audit trail, and every replica holds them all): an
	// org key with keys:write may create keys, and nothing else bounds
	// how many.
	MaxKeys = 1000
)

// placeholder is a valid hash for checking an object whose hash the
// registry makes itself.
const placeholder = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// check builds a one-org file with the tenants file's code and returns its
// problems with prefix cut from each field path, so messages read as the
// file's, relative to the object written.
func check(o config.Org, prefix string) error {
	_, err := config.Build(&config.File{Orgs: []config.Org{o}})
	if err == nil {
		return nil
	}
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &ValidationError{}
	for _, p := range ve.Problems {
		out.Problems = append(out.Problems, strings.TrimPrefix(p, prefix))
	}
	return out
}

func problems(ps ...string) error {
	var out []string
	for _, p := range ps {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &ValidationError{Problems: out}
}

// CheckOrg checks a new org, or an org after a patch.
func CheckOrg(o OrgSpec) error {
	return check(config.Org{ID: o.ID, Tier: o.Tier, RatePerMinute: o.RatePerMinute, AllowDemoRooms: o.AllowDemoRooms}, "orgs[0].")
}

// CheckKey checks a new secret key.
func CheckKey(k KeySpec) error {
	if k.AllowedIPs != nil && len(k.AllowedIPs) == 0 {
		// As in the tenants file: no list allows any address, and an
		// empty one would read as "none".
		return problems("allowed_ips: an empty list would allow every address; leave the field out to allow any address, or list the CIDRs")
	}
	if len(k.AllowedIPs) > MaxAllowedIPs {
		return problems(fmt.Sprintf("allowed_ips: at most %d entries", MaxAllowedIPs))
	}
	if len(k.Scopes) > 2*len(config.AllScopes) {
		return problems("scopes: too many entries")
	}
	var envProblem string
	if k.Env != "" && k.Env != "live" && k.Env != "test" {
		envProblem = `env: "live" or "test"`
	}
	err := check(config.Org{ID: "x", Tier: config.TierFree, Keys: []config.Key{{
		ID: k.ID, Hash: placeholder, Scopes: toScopes(k.Scopes), AllowedIPs: allowedIPs(k.AllowedIPs), ExpiresAt: k.ExpiresAt,
	}}}, "orgs[0].keys[0].")
	return join(err, envProblem)
}

// CheckAgent checks an agent for PutAgent: the tenants file's rules, and no
// publishable key hashes (those are made by CreatePublishableKey).
func CheckAgent(a config.Agent) error {
	var extra []string
	a = cloneAgent(a)
	if p := a.Public; p != nil {
		if p.KeyHash != "" {
			extra = append(extra, "public.key_hash: publishable keys are made through the publishable-keys endpoint, not set here")
		}
		if len(p.Keys) > 0 {
			extra = append(extra, "public.keys: publishable keys are made through the publishable-keys endpoint, not set here")
		}
		if len(p.AllowedOrigins) > MaxAllowedOrigins {
			extra = append(extra, fmt.Sprintf("public.allowed_origins: at most %d entries", MaxAllowedOrigins))
		}
		p.KeyHash, p.Keys = "", []config.PublishableKey{}
	}
	if len(extra) > 0 {
		return problems(extra...)
	}
	return check(config.Org{ID: "x", Tier: config.TierFree, Agents: []config.Agent{a}}, "orgs[0].agents[0].")
}

// CheckIssuers checks an org's whole jwt_issuers list for PutJWTIssuers:
// the tenants file's rules, each (issuer, audience) pair once, and no
// public_key_file (see below).
func CheckIssuers(list []config.JWTIssuer) error {
	if len(list) > MaxIssuers {
		return problems(fmt.Sprintf("jwt_issuers: at most %d entries", MaxIssuers))
	}
	var dup []string
	seen := map[[2]string]int{}
	for i, is := range list {
		if is.PublicKeyFile != "" {
			// A path on the broker's own disk, read by every replica: an API
			// caller must not make the broker open files of its choosing
			// (/dev/zero never ends). Files are for tenants files.
			dup = append(dup, fmt.Sprintf("jwt_issuers[%d].public_key_file: not accepted here; give jwks_url (or import a tenants file)", i))
			continue
		}
		k := [2]string{config.CanonicalIdentifier(is.Issuer), config.CanonicalIdentifier(is.Audience)}
		if j, ok := seen[k]; ok {
			dup = append(dup, fmt.Sprintf("jwt_issuers[%d]: the same issuer and audience as jwt_issuers[%d]", i, j))
		}
		seen[k] = i
	}
	copied := make([]config.JWTIssuer, len(list))
	for i := range list {
		copied[i] = cloneIssuer(list[i])
		if copied[i].PublicKeyFile != "" {
			copied[i].PublicKeyFile, copied[i].JWKSURL = "", "https://placeholder.invalid/jwks"
		}
	}
	err := check(config.Org{ID: "x", Tier: config.TierFree, JWTIssuers: copied}, "orgs[0].")
	return join(err, dup...)
}

// CheckLiveKit checks an org's LiveKit project with the tenants file's
// rules (config.CheckLiveKitURL, CheckLiveKitAPIKey, CheckLiveKitSecret).
// The messages never quote the secret.
func CheckLiveKit(l LiveKitSpec) error {
	var ps []string
	if err := config.CheckLiveKitURL(l.URL); err != nil {
		ps = append(ps, "url: "+err.Error())
	}
	if err := config.CheckLiveKitAPIKey(l.APIKey); err != nil {
		ps = append(ps, "api_key: "+err.Error())
	}
	if config.CheckLiveKitSecret(l.APISecret) != nil {
		ps = append(ps, fmt.Sprintf("api_secret: required, %d to %d printable characters without spaces", config.MinLiveKitSecret, config.MaxLiveKitSecret))
	}
	return problems(ps...)
}

// join adds problems to err, which is nil or a *ValidationError; empty
// ones are left out, as by problems.
func join(err error, more ...string) error {
	var ve *ValidationError
	if err != nil && !errors.As(err, &ve) {
		return err
	}
	var all []string
	if ve != nil {
		all = append(all, ve.Problems...)
	}
	return problems(append(all, more...)...)
}
