// Package auth decides who is calling: an org and its scopes. A credential
// is tried as a secret API key (sk_), then against the Sayna API secrets in
// constant time, then as a JWT of one of the orgs' jwt_issuers, then with
// the delegated auth service (Sayna's JWT mode). It knows net/http types
// only; no routing.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
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
	// ErrServiceDenied: the auth service answered 4xx.
	ErrServiceDenied = errors.New("auth service denied")
	// ErrServiceFailed: the auth service answered 5xx (or something unusable).
	ErrServiceFailed = errors.New("auth service failed")
	// ErrServiceUnavailable: the auth service (or an issuer's JWKS) could not
	// be reached in time.
	ErrServiceUnavailable = errors.New("auth service unavailable")
	// ErrConfig: the configuration cannot answer this request (e.g. an auth
	// service allowed it without naming an org and several orgs exist).
	ErrConfig = errors.New("auth configuration error")
	// ErrSigning: the JWT for the auth service could not be signed.
	ErrSigning = errors.New("auth JWT signing failed")
)

// Error is an authentication failure with what the audit log needs. Reason
// is a fixed word, never credential material.
type Error struct {
	Kind   error  // one of the sentinels above
	Reason Reason // e.g. ReasonUnknownKey, ReasonRevoked, ReasonExpired
	Org    string // when known
	KeyID  string // when known
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + string(e.Reason) }
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, reason Reason) *Error { return &Error{Kind: kind, Reason: reason} }

// Method says how a principal authenticated.
type Method string

// The methods.
const (
	MethodAPIKey      Method = "api_key"
	MethodAPISecret   Method = "api_secret"
	MethodBackendJWT  Method = "backend_jwt"
	MethodAuthService Method = "auth_service"
	MethodNone        Method = "none" // AUTH_REQUIRED=false, no credential
	// MethodPublishableKey: an agent's publishable key (public mode).
	MethodPublishableKey Method = "publishable_key"
	// MethodTicket: a ticket presented as its own credential (/connect);
	// it names no Principal, only the audit line's method.
	MethodTicket Method = "ticket"
)

// Principal is an authenticated caller.
type Principal struct {
	Org    string
	Method Method
	KeyID  string         // the key id, secret id or issuer; safe to log
	Scopes []config.Scope // nil means every scope
}

// Require returns an *Error wrapping ErrInsufficientScope unless the
// principal carries scope.
func (p *Principal) Require(scope config.Scope) error {
	if p.Scopes == nil || slices.Contains(p.Scopes, scope) {
		return nil
	}
	return &Error{Kind: ErrInsufficientScope, Reason: MissingScope(scope), Org: p.Org, KeyID: p.KeyID}
}

// Tenants gives the tenants in force; *config.Holder implements it.
type Tenants interface {
	Current() *config.Tenants
}

// Request is what Authenticate looks at. Body and Header matter only to
// the delegated auth service, which signs them.
type Request struct {
	// Tenants is the snapshot the request is resolved against: the caller
	// passes the one it uses for the whole request, so a reload between two
	// reads cannot give a principal of one file and an org of another. Nil
	// means the Authenticator's holder, read once.
	Tenants *config.Tenants
	// Credential is the bearer credential as presented.
	Credential string
	ClientIP   netip.Addr
	Method     string
	Path       string
	Header     http.Header
	// Body is the request body, forwarded to the auth service as
	// request_body; nil or empty is forwarded as null. The caller passes
	// only a body it will itself read the same way (strict JSON).
	Body []byte
}

// Options configures an Authenticator beyond API keys.
type Options struct {
	// Production refuses sk_test_/pk_test_ keys.
	Production bool
	// Secrets are the Sayna API secrets: each authenticates as its id's org.
	Secrets []config.APISecret
	// Service, if set, is the delegated auth service.
	Service *Service
	// JWKSTimeout bounds a backend issuer's JWKS fetch (default 5s).
	JWKSTimeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Authenticator checks credentials against the tenants in force. It is safe
// for concurrent use.
type Authenticator struct {
	tenants Tenants
	opt     Options
	secrets []secret
	now     func() time.Time
	jwks    *jwksCache
}

type secret struct {
	id  string
	sum [32]byte
}

// New returns an Authenticator.
func New(tenants Tenants, opt Options) *Authenticator {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{tenants: tenants, opt: opt, now: now, jwks: newJWKSCache(opt.JWKSTimeout, now)}
	for _, s := range opt.Secrets {
		// Compare digests: equal length for every candidate, so the compare
		// time says nothing about the secret's length either.
		a.secrets = append(a.secrets, secret{id: s.ID, sum: sha256.Sum256([]byte(s.Secret))})
	}
	return a
}

// Authenticate identifies the caller.
func (a *Authenticator) Authenticate(ctx context.Context, req *Request) (*Principal, error) {
	ten := req.Tenants
	if ten == nil {
		ten = a.tenants.Current()
	}
	cred := req.Credential
	if strings.HasPrefix(cred, string(apikey.Admin)+"_") {
		// A platform admin key opens the admin API only. It is never tried
		// as an API secret, a JWT or with the auth service: it never leaves
		// the broker.
		return nil, fail(ErrUnauthorized, ReasonAdminKeyNotAccepted)
	}
	if apikey.Looks(cred) {
		return a.secretKey(ten, cred, req.ClientIP)
	}
	if p := a.apiSecret(cred); p != nil {
		if ten.Org(p.Org) == nil {
			// Its org is gone (deleted in the database, which is the
			// truth; the registry logged it when the snapshot came): the
			// secret fails like a revoked key, not as a server error.
			return nil, fail(ErrUnauthorized, ReasonAPISecretOrgGone)
		}
		return p, nil
	}
	if iss, aud, ok := jwtClaims(cred); ok {
		if refs := ten.Issuers(iss); len(refs) > 0 {
			return a.backendJWT(ctx, cred, aud, refs)
		}
	}
	if a.opt.Service != nil {
		return a.opt.Service.Check(ctx, req, ten)
	}
	return nil, fail(ErrUnauthorized, ReasonUnknownCredential)
}

// apiSecret compares cred with every configured secret in constant time;
// all are compared, whatever matches, so timing reveals nothing.
func (a *Authenticator) apiSecret(cred string) *Principal {
	if len(a.secrets) == 0 {
		return nil
	}
	sum := sha256.Sum256([]byte(cred))
	match := -1
	for i := range a.secrets {
		if subtle.ConstantTimeCompare(sum[:], a.secrets[i].sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil
	}
	id := a.secrets[match].id
	return &Principal{Org: id, Method: MethodAPISecret, KeyID: id}
}

func (a *Authenticator) secretKey(ten *config.Tenants, credential string, clientIP netip.Addr) (*Principal, error) {
	kind, env, err := apikey.Parse(credential)
	if err != nil {
		return nil, fail(ErrUnauthorized, ReasonMalformedKey)
	}
	if kind != apikey.Secret {
		return nil, fail(ErrUnauthorized, ReasonPublishableKeyNotAccepted)
	}
	if a.opt.Production && env == apikey.Test {
		return nil, fail(ErrUnauthorized, ReasonTestKeyInProduction)
	}
	var hb [apikey.HashLen]byte // the hash on the stack: no allocation
	h := apikey.AppendHash(hb[:0], credential)
	k := ten.KeyByHashBytes(h)
	// The map is keyed by the hash, so a hit already means equal; the
	// constant-time compare keeps that true if the index ever changes.
	if k == nil || subtle.ConstantTimeCompare([]byte(k.Hash), h) != 1 {
		return nil, fail(ErrUnauthorized, ReasonUnknownKey)
	}
	org := k.Org().ID
	switch {
	case k.Revoked:
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonRevoked, Org: org, KeyID: k.ID}
	case k.ExpiresAt != nil && !a.now().Before(*k.ExpiresAt):
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonExpired, Org: org, KeyID: k.ID}
	case !k.AllowsIP(clientIP):
		return nil, &Error{Kind: ErrIPNotAllowed, Reason: ReasonIPNotAllowed, Org: org, KeyID: k.ID}
	}
	return &Principal{Org: org, Method: MethodAPIKey, KeyID: k.ID, Scopes: k.Scopes}, nil
}

// Anonymous is the principal of a request without a credential when
// AUTH_REQUIRED=false (development only): the only org, or "default".
func Anonymous(t *config.Tenants) (*Principal, error) {
	orgs := t.Orgs()
	switch {
	case len(orgs) == 1:
		return &Principal{Org: orgs[0], Method: MethodNone, KeyID: "anonymous"}, nil
	case t.Org("default") != nil:
		return &Principal{Org: "default", Method: MethodNone, KeyID: "anonymous"}, nil
	}
	return nil, fail(ErrConfig, ReasonSeveralOrgs)
}

// jwtClaims reads the iss and aud of a credential shaped as a compact JWT
// without verifying anything; they only route the credential to the
// issuer entry that must verify it.
func jwtClaims(cred string) (iss string, aud []string, ok bool) {
	if strings.Count(cred, ".") != 2 || len(cred) > 8<<10 {
		return "", nil, false
	}
	return unverifiedClaims(cred)
}
