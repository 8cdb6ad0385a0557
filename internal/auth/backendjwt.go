package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
)

// Backend JWT rules (Ferni's authentication guide): asymmetric algorithms only,
// at most an hour of life, a little clock skew.
const (
	backendMaxLifetime = time.Hour
	backendLeeway      = 30 * time.Second
	jwksRefreshEvery   = time.Minute
	jwksMaxBytes       = 256 << 10
)

var backendMethods = []string{"RS256", "ES256", "EdDSA"}

// unverifiedClaims reads the iss and aud of a compact JWT without verifying
// anything: they only route the credential to the issuer entry that must
// verify it. It reads the payload's members by their exact names and
// ignores the rest, so that a JWT golang-jwt would not even read (a date
// that is not a number) still reaches its issuer, whose verification
// (strictJWT first) says what is wrong with it.
func unverifiedClaims(cred string) (iss string, aud []string, ok bool) {
	parts := strings.Split(cred, ".")
	if len(parts) != 3 {
		return "", nil, false
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || json.Unmarshal(m["iss"], &iss) != nil || iss == "" {
		return "", nil, false
	}
	var one string
	switch raw := m["aud"]; {
	case raw == nil:
	case json.Unmarshal(raw, &one) == nil:
		aud = []string{one}
	case json.Unmarshal(raw, &aud) != nil:
		aud = nil
	}
	return iss, aud, true
}

// backendJWT verifies cred against the issuers registered under its iss
// (several orgs may trust one identity provider with different audiences).
// A JWT whose audiences name more than one of those entries is refused
// before any verification: whichever entry went first would otherwise
// decide its org (or its scopes), so it names no caller for certain. So is
// a JWT that strictJWT refuses (a loose date, a crit header, a key twice):
// two readers could read it differently.
func (a *Authenticator) backendJWT(ctx context.Context, cred string, aud []string, refs []*config.IssuerRef) (*Principal, error) {
	if strictJWT(cred) != nil {
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonBackendJWTMalformed, KeyID: refs[0].Issuer}
	}
	var named []*config.IssuerRef
	for _, ref := range refs {
		if slices.Contains(aud, ref.Audience) {
			named = append(named, ref)
		}
	}
	if len(named) > 1 {
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonBackendJWTAmbiguous, KeyID: named[0].Issuer}
	}
	if len(named) == 0 {
		// No entry of this issuer takes the JWT's audience. Refused without
		// fetching any entry's keys: one org's JWKS (failing, slow, or
		// watching when another org's users log in) has no part in another
		// org's JWTs.
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonBackendJWTInvalid, KeyID: refs[0].Issuer}
	}
	return a.verifyBackendJWT(ctx, cred, named[0])
}

func (a *Authenticator) verifyBackendJWT(ctx context.Context, cred string, ref *config.IssuerRef) (*Principal, error) {
	var c jwt.RegisteredClaims
	parser := jwt.NewParser(
		// Never HS* (a shared secret in a tenants file) and never none.
		jwt.WithValidMethods(backendMethods),
		// golang-jwt makes exp optional by default; an hour at most is the rule.
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(ref.Issuer),
		jwt.WithAudience(ref.Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(backendLeeway),
		jwt.WithTimeFunc(a.now),
		// Unpadded base64url without stray bits, as strictJWT checked.
		jwt.WithStrictDecoding(),
	)
	var fetchErr error
	_, err := parser.ParseWithClaims(cred, &c, func(t *jwt.Token) (any, error) {
		if k := ref.PublicKey(); k != nil {
			return k, nil
		}
		kid, _ := t.Header["kid"].(string)
		k, err := a.jwks.key(ctx, ref.JWKSURL, kid)
		if err != nil {
			fetchErr = err
		}
		return k, err
	})
	if fetchErr != nil && errors.Is(fetchErr, ErrServiceUnavailable) {
		return nil, &Error{Kind: ErrServiceUnavailable, Reason: ReasonIssuerJWKSUnreachable, Org: ref.Org.ID, KeyID: ref.Issuer}
	}
	if err != nil {
		reason := ReasonBackendJWTInvalid
		if errors.Is(err, jwt.ErrTokenExpired) {
			reason = ReasonBackendJWTExpired
		}
		return nil, &Error{Kind: ErrUnauthorized, Reason: reason, Org: ref.Org.ID, KeyID: ref.Issuer}
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > backendMaxLifetime {
		return nil, &Error{Kind: ErrUnauthorized, Reason: ReasonBackendJWTLifetime, Org: ref.Org.ID, KeyID: ref.Issuer}
	}
	return &Principal{Org: ref.Org.ID, Method: MethodBackendJWT, KeyID: ref.Issuer, Scopes: ref.Scopes}, nil
}

// jwksCache fetches issuers' JWKS documents, keeps them, and refreshes one
// on an unknown kid at most once a minute after a successful fetch. A fetch
// runs apart from the request that asked for it, on a context of its own
// bounded by timeout, and is shared by every caller that needs the same URL
// meanwhile: a caller that hangs up stops waiting, but the fetch goes on and
// fills the cache for the others, so no caller can make a fetch fail for
// anyone else. A fetch that fails on its own (network, timeout, status,
// document) is tried again after a backoff that doubles from
// jwksRetryFirst to jwksRefreshEvery; until then an issuer with no keys
// answers ErrServiceUnavailable, and one with keys keeps them.
type jwksCache struct {
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
	mu      sync.Mutex
	sets    map[string]*jwksEntry
}

// jwksEntry is one URL's keys and fetch state, all guarded by mu.
type jwksEntry struct {
	mu   sync.Mutex
	keys map[string]crypto.PublicKey // nil until a fetch succeeds
	// fetched is when the last successful fetch ended.
	fetched time.Time
	// failures counts the failed fetches since the last success; with
	// failures > 0, no fetch starts before retryAt, and lastErr says why
	// the last one failed.
	failures int
	retryAt  time.Time
	lastErr  error
	// inflight is the fetch under way, nil if none.
	inflight *jwksFetch
}

// jwksFetch is one fetch, shared by the callers waiting for it. err is set
// before done is closed, and is read only after.
type jwksFetch struct {
	done chan struct{}
	err  error
}

// The first retry after a failed fetch comes after jwksRetryFirst, and each
// further failure doubles the wait, up to jwksRefreshEvery.
const jwksRetryFirst = time.Second

func newJWKSCache(timeout time.Duration, now func() time.Time) *jwksCache {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &jwksCache{
		client: &http.Client{
			// The keys must come from the configured URL, which the config
			// checked is https: a redirect could lead to plain http or to an
			// internal host, so it is a failed fetch, never followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: timeout, now: now, sets: map[string]*jwksEntry{},
	}
}

var errUnknownKid = errors.New("unknown kid")

// key returns the key kid of the JWKS at url, fetching the document if kid
// is unknown and the last fetch allows another. It waits for the fetch at
// most until ctx ends; the fetch itself does not depend on ctx. An error
// wrapping ErrServiceUnavailable means the issuer's keys could not be had
// (no keys yet and the fetch failed, or ctx ended first), so the JWT was
// not judged; errUnknownKid means the keys at hand do not hold kid.
func (c *jwksCache) key(ctx context.Context, url, kid string) (crypto.PublicKey, error) {
	c.mu.Lock()
	e := c.sets[url]
	if e == nil {
		e = &jwksEntry{}
		c.sets[url] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	if k, ok := e.lookup(kid); ok {
		e.mu.Unlock()
		return k, nil
	}
	f := e.inflight
	if f == nil {
		if err := e.tooSoon(c.now()); err != nil {
			e.mu.Unlock()
			return nil, err
		}
		f = c.start(ctx, url, e)
	}
	e.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		// Only this caller gives up; the fetch goes on for the others.
		return nil, fmt.Errorf("%w: the request ended while the JWKS was being fetched: %w", ErrServiceUnavailable, ctx.Err())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, ok := e.lookup(kid); ok {
		return k, nil
	}
	if f.err != nil && e.keys == nil {
		return nil, fmt.Errorf("%w: %w", ErrServiceUnavailable, f.err)
	}
	return nil, errUnknownKid
}

// tooSoon says why no fetch may start at now, or nil if one may: a failed
// fetch waits its backoff, a successful one its minute. e.mu is held.
func (e *jwksEntry) tooSoon(now time.Time) error {
	switch {
	case e.failures > 0 && now.Before(e.retryAt):
		if e.keys == nil {
			return fmt.Errorf("%w: the last JWKS fetch failed, next try in %v: %w",
				ErrServiceUnavailable, e.retryAt.Sub(now), e.lastErr)
		}
		// Keep serving the keys we had.
		return errUnknownKid
	case e.failures == 0 && !e.fetched.IsZero() && now.Sub(e.fetched) < jwksRefreshEvery:
		return errUnknownKid
	}
	return nil
}

// start begins a fetch of url into e and records it as e's fetch under
// way; e.mu is held. The fetch runs on a context detached from the
// caller's (its values kept, its cancellation and deadline not) and
// bounded by c.timeout, so that the end of the fetch's context is a
// failure of the JWKS, never of a caller.
func (c *jwksCache) start(ctx context.Context, url string, e *jwksEntry) *jwksFetch {
	f := &jwksFetch{done: make(chan struct{})}
	e.inflight = f
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	go func() {
		defer cancel()
		keys, err := c.fetch(fctx, url)
		e.mu.Lock()
		now := c.now()
		if err != nil {
			e.failures++
			e.retryAt = now.Add(jwksBackoff(e.failures))
			e.lastErr = err
		} else {
			e.keys, e.fetched = keys, now
			e.failures, e.lastErr = 0, nil
		}
		e.inflight = nil
		f.err = err
		e.mu.Unlock()
		close(f.done)
	}()
	return f
}

// jwksBackoff is the wait after the nth failed fetch in a row (n >= 1):
// jwksRetryFirst, doubled for each further failure, at most
// jwksRefreshEvery.
func jwksBackoff(n int) time.Duration {
	d := jwksRetryFirst
	for i := 1; i < n && d < jwksRefreshEvery; i++ {
		d *= 2
	}
	return min(d, jwksRefreshEvery)
}

// lookup finds kid; a JWT without kid matches a set of exactly one key.
func (e *jwksEntry) lookup(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(e.keys) == 1 {
		for _, k := range e.keys {
			return k, true
		}
	}
	k, ok := e.keys[kid]
	return k, ok
}

type jwk struct {
	Kty, Kid, Crv, X, Y, N, E, Use, Alg string
}

func (c *jwksCache) fetch(ctx context.Context, url string) (map[string]crypto.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS answered %d", resp.StatusCode)
	}
	var doc struct{ Keys []jwk }
	if err := json.NewDecoder(io.LimitReader(resp.Body, jwksMaxBytes)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if pk, err := k.publicKey(); err == nil {
			keys[k.Kid] = pk
		}
	}
	return keys, nil
}

func (k jwk) publicKey() (crypto.PublicKey, error) {
	b := func(s string) []byte { v, _ := base64.RawURLEncoding.DecodeString(s); return v }
	switch {
	case k.Kty == "RSA":
		n, e := new(big.Int).SetBytes(b(k.N)), new(big.Int).SetBytes(b(k.E))
		if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return nil, errors.New("weak or malformed RSA key")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case k.Kty == "EC" && k.Crv == "P-256":
		x, y := b(k.X), b(k.Y)
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("malformed P-256 key")
		}
		raw := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		x := b(k.X)
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("malformed Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, errors.New("unsupported key")
}
