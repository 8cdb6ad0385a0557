// Package auth decides who is calling: an org and its scopes, from a secret
// API key (and, in later modes, Sayna API secrets, a delegated auth service
// or a backend's own JWT). It knows net/http types only; no routing.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// Sentinel errors; every *Error unwraps to one of them.
var (
	// ErrUnauthorized: unknown, malformed, revoked, expired or
	// wrong-environment credential.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrIPNotAllowed: the key is valid but the client IP is outside its allowed_ips.
	ErrIPNotAllowed = errors.New("ip not allowed")
	// ErrInsufficientScope: the credential lacks the scope the endpoint needs.
	ErrInsufficientScope = errors.New("insufficient scope")
)

// Error is an authentication failure with what the audit log needs. Reason
// is a fixed word, never credential material.
type Error struct {
	Kind   error  // one of the sentinels above
	Reason string // e.g. "unknown_key", "revoked", "expired"
	Org    string // when known
	KeyID  string // when known
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Reason }
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, reason string) *Error { return &Error{Kind: kind, Reason: reason} }

// Method says how a principal authenticated.
type Method string

// The methods.
const (
	MethodAPIKey Method = "api_key"
)

// Principal is an authenticated caller.
type Principal struct {
	Org    string
	Method Method
	KeyID  string   // the key id, secret id or issuer; safe to log
	Scopes []string // nil means every scope
}

// Require returns an *Error wrapping ErrInsufficientScope unless the
// principal carries scope.
func (p *Principal) Require(scope string) error {
	if p.Scopes == nil || slices.Contains(p.Scopes, scope) {
		return nil
	}
	return &Error{Kind: ErrInsufficientScope, Reason: "missing_scope:" + scope, Org: p.Org, KeyID: p.KeyID}
}

// Tenants gives the tenants in force; *config.Holder implements it.
type Tenants interface {
	Current() *config.Tenants
}

// Authenticator checks credentials against the tenants in force. It is safe
// for concurrent use.
type Authenticator struct {
	tenants    Tenants
	production bool
	now        func() time.Time
}

// New returns an Authenticator. In production, test keys are refused even
// when listed.
func New(tenants Tenants, production bool, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{tenants: tenants, production: production, now: now}
}

// Authenticate identifies the caller presenting credential from clientIP.
func (a *Authenticator) Authenticate(ctx context.Context, credential string, clientIP netip.Addr) (*Principal, error) {
	if apikey.Looks(credential) {
		return a.secretKey(credential, clientIP)
	}
	return nil, fail(ErrUnauthorized, "unknown_credential")
}

func (a *Authenticator) secretKey(credential string, clientIP netip.Addr) (*Principal, error) {
	kind, env, err := apikey.Parse(credential)
	if err != nil {
		return nil, fail(ErrUnauthorized, "malformed_key")
	}
	if kind != apikey.Secret {
		return nil, fail(ErrUnauthorized, "publishable_key_not_accepted")
	}
	if a.production && env == apikey.Test {
		return nil, fail(ErrUnauthorized, "test_key_in_production")
	}
	h := apikey.Hash(credential)
	k := a.tenants.Current().KeyByHash(h)
	// The map is keyed by the hash, so a hit already means equal; the
	// constant-time compare keeps that true if the index ever changes.
	if k == nil || subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return nil, fail(ErrUnauthorized, "unknown_key")
	}
	org := k.Org().ID
	switch {
	case k.Revoked:
		return nil, &Error{Kind: ErrUnauthorized, Reason: "revoked", Org: org, KeyID: k.ID}
	case k.ExpiresAt != nil && !a.now().Before(*k.ExpiresAt):
		return nil, &Error{Kind: ErrUnauthorized, Reason: "expired", Org: org, KeyID: k.ID}
	case !k.AllowsIP(clientIP):
		return nil, &Error{Kind: ErrIPNotAllowed, Reason: "ip_not_allowed", Org: org, KeyID: k.ID}
	}
	return &Principal{Org: org, Method: MethodAPIKey, KeyID: k.ID, Scopes: k.Scopes}, nil
}
