package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
)

// testClock is a clock the test moves by hand, safe to read from the
// goroutine a JWKS fetch runs on.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// jwksDocument is a JWKS document holding priv's public key under kid
// "k1".
func jwksDocument(priv ed25519.PrivateKey) []byte {
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
		"x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}}})
	return doc
}

// jwksTenants is acme with one backend JWT issuer whose JWKS is at url, and
// an authenticator over it on clock with a JWKS timeout of a minute (a
// fetch in these tests ends when the test lets it, never by the timeout).
func jwksTenants(t *testing.T, url string, clock *testClock) *auth.Authenticator {
	t.Helper()
	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: vb, jwks_url: '` + url + `', scopes: [tokens:create]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(config.StaticHolder(ten), auth.Options{Now: clock.now, JWKSTimeout: time.Minute})
}

// backendJWTFor is a backend JWT of https://idp.example for vb, valid at
// the clock's time, under kid and signed with priv.
func backendJWTFor(clock *testClock, kid string, priv ed25519.PrivateKey) string {
	now := clock.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": "https://idp.example", "aud": "vb", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(priv)
	if err != nil {
		panic(err)
	}
	return s
}

// waitUntil polls cond until it holds, failing the test after ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// slowJWKS is a JWKS server that holds every request until release is
// closed, then answers priv's key; hits counts the requests that arrived.
type slowJWKS struct {
	srv     *httptest.Server
	hits    atomic.Int32
	release chan struct{}
	once    sync.Once
}

func newSlowJWKS(t *testing.T, priv ed25519.PrivateKey) *slowJWKS {
	s := &slowJWKS{release: make(chan struct{})}
	doc := jwksDocument(priv)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		select {
		case <-s.release:
		case <-r.Context().Done():
			return
		}
		w.Write(doc)
	}))
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.open) // runs first: no handler is left waiting for Close
	return s
}

func (s *slowJWKS) open() { s.once.Do(func() { close(s.release) }) }

// isJWKSUnreachable says whether err is the 503 path: ErrServiceUnavailable
// with the reason issuer_jwks_unreachable.
func isJWKSUnreachable(err error) bool {
	var ae *auth.Error
	return errors.Is(err, auth.ErrServiceUnavailable) && errors.As(err, &ae) && ae.Reason == auth.ReasonIssuerJWKSUnreachable
}

// TestJWKSFetchSurvivesCancelledCaller: anyone who knows an issuer's iss
// can start its JWKS fetch with a JWT signed by any key, then hang up. The
// fetch must not fail with that request, nor the failure lock out the
// issuer's genuine JWTs: the next caller is served from the same fetch.
func TestJWKSFetchSurvivesCancelledCaller(t *testing.T) {
	_, genuine, _ := ed25519.GenerateKey(rand.Reader)
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	jwks := newSlowJWKS(t, genuine)
	clock := newTestClock()
	a := jwksTenants(t, jwks.srv.URL, clock)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx, &auth.Request{Credential: backendJWTFor(clock, "k1", forged)})
		errc <- err
	}()
	waitUntil(t, "the forged JWT's JWKS fetch", func() bool { return jwks.hits.Load() == 1 })
	cancel()
	if err := <-errc; !isJWKSUnreachable(err) {
		t.Fatalf("the caller that hung up: %v, want 503 issuer_jwks_unreachable", err)
	}

	jwks.open()
	p, err := a.Authenticate(context.Background(), &auth.Request{Credential: backendJWTFor(clock, "k1", genuine)})
	if err != nil || p.Org != "acme" {
		t.Fatalf("the genuine JWT after a caller hung up mid-fetch: %v, %v; want acme", p, err)
	}
	if n := jwks.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want the one the first caller started", n)
	}
}

// TestJWKSConcurrentCallersShareOneFetch: callers that need an issuer's
// JWKS while it is being fetched wait for that fetch rather than start
// their own; each stops waiting when its own context ends, and the others
// are still served when the fetch answers.
func TestJWKSConcurrentCallersShareOneFetch(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks := newSlowJWKS(t, priv)
	clock := newTestClock()
	a := jwksTenants(t, jwks.srv.URL, clock)
	cred := backendJWTFor(clock, "k1", priv)
	authenticate := func(ctx context.Context, errc chan<- error) {
		p, err := a.Authenticate(ctx, &auth.Request{Credential: cred})
		if err == nil && p.Org != "acme" {
			err = errors.New("authenticated as " + p.Org)
		}
		errc <- err
	}

	const waiting, leaving = 8, 8
	stay := make(chan error, waiting)
	go authenticate(context.Background(), stay)
	waitUntil(t, "the first caller's JWKS fetch", func() bool { return jwks.hits.Load() == 1 })
	for range waiting - 1 {
		go authenticate(context.Background(), stay)
	}

	// Callers that hang up while the fetch is under way return at once,
	// each with its own 503; the fetch is not theirs to end.
	ctx, cancel := context.WithCancel(context.Background())
	leave := make(chan error, leaving)
	for range leaving {
		go authenticate(ctx, leave)
	}
	cancel()
	for range leaving {
		select {
		case err := <-leave:
			if !isJWKSUnreachable(err) {
				t.Fatalf("a caller that hung up: %v, want 503 issuer_jwks_unreachable", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a caller that hung up is still waiting for a fetch it did not start")
		}
	}

	jwks.open()
	for range waiting {
		if err := <-stay; err != nil {
			t.Fatalf("a caller that waited: %v", err)
		}
	}
	if n := jwks.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for %d concurrent callers, want 1", n, waiting+leaving)
	}
}

// TestJWKSFailureIsUnavailableAndRetriedAfterBackoff: a JWKS that fails
// (an error status, a document that is not JSON) with no keys cached makes
// the issuer's JWTs 503 issuer_jwks_unreachable, never 401; the fetch is
// tried again after 1 s, then 2 s, and so on, not after a flat minute.
// Once keys are cached, a failed refresh keeps them.
func TestJWKSFailureIsUnavailableAndRetriedAfterBackoff(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	doc := jwksDocument(priv)
	var answer atomic.Value // string: "ok", "500" or "garbage"
	answer.Store("500")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch answer.Load().(string) {
		case "ok":
			w.Write(doc)
		case "garbage":
			w.Write([]byte("<html>maintenance</html>"))
		default:
			http.Error(w, "down", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	clock := newTestClock()
	a := jwksTenants(t, srv.URL, clock)
	try := func(kid string) error {
		_, err := a.Authenticate(context.Background(), &auth.Request{Credential: backendJWTFor(clock, kid, priv)})
		return err
	}

	for _, step := range []struct {
		name    string
		advance time.Duration
		answer  string
		kid     string
		ok      bool  // authenticated; else 503 (no keys) or 401 (keys cached)
		hits    int32 // JWKS requests so far
	}{
		{"first fetch fails", 0, "500", "k1", false, 1},
		{"within the first backoff", 999 * time.Millisecond, "ok", "k1", false, 1},
		{"after 1 s, fails again", time.Millisecond, "garbage", "k1", false, 2},
		{"within the second backoff", 1999 * time.Millisecond, "ok", "k1", false, 2},
		{"after 2 s, answers", time.Millisecond, "ok", "k1", true, 3},
		{"cached", 0, "500", "k1", true, 3},
		{"unknown kid within the minute", 30 * time.Second, "500", "k2", false, 3},
		{"unknown kid after the minute, fetch fails", 30 * time.Second, "500", "k2", false, 4},
		{"cached keys kept after a failed refresh", 0, "500", "k1", true, 4},
		{"unknown kid retried after 1 s", time.Second, "ok", "k2", false, 5},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.advance(step.advance)
			answer.Store(step.answer)
			err := try(step.kid)
			switch {
			case step.ok && err != nil:
				t.Fatalf("err = %v, want acme", err)
			case !step.ok && step.kid == "k1" && !isJWKSUnreachable(err):
				t.Fatalf("err = %v, want 503 issuer_jwks_unreachable", err)
			case !step.ok && step.kid == "k2" && !errors.Is(err, auth.ErrUnauthorized):
				t.Fatalf("err = %v, want 401 for a kid the cached keys lack", err)
			}
			if n := hits.Load(); n != step.hits {
				t.Fatalf("%d JWKS requests, want %d", n, step.hits)
			}
		})
	}
}

// TestJWKSRedirectRefused: an https jwks_url that redirects could lead the
// fetch to plain http or to an internal host; the redirect is a failed
// fetch (503), and its target is never asked.
func TestJWKSRedirectRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	doc := jwksDocument(priv)
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		w.Write(doc)
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/jwks.json", http.StatusFound))
	defer redirector.Close()
	clock := newTestClock()
	a := jwksTenants(t, redirector.URL, clock)

	_, err := a.Authenticate(context.Background(), &auth.Request{Credential: backendJWTFor(clock, "k1", priv)})
	if !isJWKSUnreachable(err) {
		t.Fatalf("err = %v, want 503 issuer_jwks_unreachable", err)
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("the redirect's target was asked %d times", n)
	}
}

// TestJWKSBackoffGrowsToTheMinute: each failed fetch in a row doubles the
// wait before the next, from 1 s up to a minute, and no sooner is the
// JWKS asked again.
func TestJWKSBackoffGrowsToTheMinute(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	clock := newTestClock()
	a := jwksTenants(t, srv.URL, clock)
	try := func() error {
		_, err := a.Authenticate(context.Background(), &auth.Request{Credential: backendJWTFor(clock, "k1", priv)})
		return err
	}

	if err := try(); !isJWKSUnreachable(err) || hits.Load() != 1 {
		t.Fatalf("first fetch: %v, %d requests", err, hits.Load())
	}
	for i, wait := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		wait *= time.Second
		clock.advance(wait - time.Millisecond)
		if err := try(); !isJWKSUnreachable(err) || hits.Load() != int32(i+1) {
			t.Fatalf("%v after failure %d: %v, %d requests; want 503 and no new fetch", wait-time.Millisecond, i+1, err, hits.Load())
		}
		clock.advance(time.Millisecond)
		if err := try(); !isJWKSUnreachable(err) || hits.Load() != int32(i+2) {
			t.Fatalf("%v after failure %d: %v, %d requests; want 503 and a new fetch", wait, i+1, err, hits.Load())
		}
	}
}

// TestJWKSFetchTimesOut: the fetch, detached from the caller's context,
// is still bounded by the JWKS timeout; a JWKS that never answers is a 503.
func TestJWKSFetchTimesOut(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	ten, err := config.Parse([]byte("orgs:\n  - id: acme\n    tier: free\n    jwt_issuers:\n      - {issuer: https://idp.example, audience: vb, jwks_url: '" + srv.URL + "', scopes: [tokens:create]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	a := auth.New(config.StaticHolder(ten), auth.Options{Now: clock.now, JWKSTimeout: 50 * time.Millisecond})
	_, err = a.Authenticate(context.Background(), &auth.Request{Credential: backendJWTFor(clock, "k1", priv)})
	if !isJWKSUnreachable(err) {
		t.Fatalf("err = %v, want 503 issuer_jwks_unreachable", err)
	}
}

// TestSharedIssuerOtherOrgsJWKSHasNoPart: two orgs trust one identity
// provider with different audiences (the pair is what must be unique). A
// JWT for the second org's audience is verified against the second org's
// entry only: the first org's JWKS, failing, is never asked (no 503 for
// the second org's users, and no signal to the first org of when they log
// in), and a JWT naming no registered audience fetches nothing at all.
func TestSharedIssuerOtherOrgsJWKSHasNoPart(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var badHits, goodHits atomic.Int32
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		w.Write(jwksDocument(priv))
	}))
	defer good.Close()
	ten, err := config.Parse([]byte(`orgs:
  - id: aaa-first
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: first-aud, jwks_url: '` + bad.URL + `', scopes: [tokens:create]}]
  - id: victim
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: vb, jwks_url: '` + good.URL + `', scopes: [tokens:create]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	a := auth.New(config.StaticHolder(ten), auth.Options{Now: clock.now, JWKSTimeout: 5 * time.Second})
	jwtFor := func(aud string) string {
		now := clock.now()
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "https://idp.example", "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i := range 3 {
		p, err := a.Authenticate(context.Background(), &auth.Request{Credential: jwtFor("vb")})
		if err != nil || p.Org != "victim" {
			t.Fatalf("the second org's valid JWT, try %d: %v, %v", i, p, err)
		}
		clock.advance(2 * time.Minute)
	}
	if _, err := a.Authenticate(context.Background(), &auth.Request{Credential: jwtFor("nobody")}); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("a JWT for no registered audience: %v, want unauthorized", err)
	}
	if n := badHits.Load(); n != 0 {
		t.Fatalf("the first org's JWKS was asked %d times for JWTs that were not for it", n)
	}
	if n := goodHits.Load(); n != 1 {
		t.Fatalf("the second org's JWKS was asked %d times, want 1", n)
	}
}
