package httpapi

// These are unit tests of the handlers. They run the real handler stack
// (New) on loopback with a memory store, but put small in-test
// fakes in place of the authenticator, the ticket issuer and verifier and
// LiveKit, and wrap the store to fail on demand: they reach the failures
// real components cannot be made to produce at a chosen step (a signer
// failing, the store failing after a room was claimed). The tests against
// the real components (Redis, LiveKit, the auth service, agent workers)
// are in internal/app.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/jsonlog"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
	"github.com/voicebroker/voicebroker/pkg/token"
)

var (
	_ authenticator  = (*fakeAuth)(nil)
	_ ticketIssuer   = (*fakeIssuer)(nil)
	_ ticketVerifier = (*fakeVerifier)(nil)
	_ liveKit        = (*fakeLiveKit)(nil)
	_ store.Store    = (*spyStore)(nil)
)

var errInjected = errors.New("injected failure")

// storeDown is a store failure as the store reports one.
var storeDown = fmt.Errorf("%w: %w", store.ErrUnavailable, errInjected)

// fakeAuth answers every credential with principal (acme, every scope,
// unless a test sets it) or err.
type fakeAuth struct {
	mu        sync.Mutex
	principal *auth.Principal
	err       error
	calls     int
}

func (f *fakeAuth) Authenticate(_ context.Context, _ *auth.Request) (*auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	p := *f.principal
	return &p, nil
}

// fakeIssuer signs with a real issuer, records what it signed, or fails.
type fakeIssuer struct {
	*token.Issuer
	mu     sync.Mutex
	err    error
	signed []string
}

func (f *fakeIssuer) Mint(t token.Ticket) (string, *token.Claims, error) {
	c, err := f.NewClaims(t)
	if err != nil {
		return "", nil, err
	}
	s, err := f.Sign(c)
	if err != nil {
		return "", nil, err
	}
	return s, c, nil
}

// Sign signs with the real issuer, or fails with err (the handlers make
// the claims with NewClaims, store the nonce, then Sign).
func (f *fakeIssuer) Sign(c *token.Claims) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	s, err := f.Issuer.Sign(c)
	if err == nil {
		f.signed = append(f.signed, s)
	}
	return s, err
}

// fakeVerifier verifies with a real verifier, or fails with err. With
// noRecords, CheckUnsigned takes no ticket, so /token/redeem goes the way
// it went before records: the reference the fast path is compared with.
type fakeVerifier struct {
	*token.Verifier
	mu        sync.Mutex
	err       error
	calls     int
	noRecords bool
}

func (f *fakeVerifier) Verify(raw string) (*token.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.Verifier.Verify(raw)
}

// CheckUnsigned checks with the real verifier, or fails with err, as a
// failing Verify would.
func (f *fakeVerifier) CheckUnsigned(raw string) (*token.Claims, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	if f.noRecords {
		return nil, "", token.ErrNoRecord
	}
	return f.Verifier.CheckUnsigned(raw)
}

// spyStore is a memory store that counts calls and fails the methods named
// in fail.
type spyStore struct {
	store.Store
	mu       sync.Mutex
	fail     map[string]error
	calls    map[string]int
	released []string
}

func (s *spyStore) hit(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	return s.fail[method]
}

func (s *spyStore) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

func (s *spyStore) failOn(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = err
}

func (s *spyStore) PutNonce(ctx context.Context, n store.Nonce, ttl time.Duration, l *store.Limit) (store.Result, error) {
	if err := s.hit("PutNonce"); err != nil {
		return store.Result{}, err
	}
	return s.Store.PutNonce(ctx, n, ttl, l)
}

func (s *spyStore) ConsumeNonce(ctx context.Context, n store.Nonce, l *store.Limit) (store.Result, error) {
	if err := s.hit("ConsumeNonce"); err != nil {
		return store.Result{}, err
	}
	return s.Store.ConsumeNonce(ctx, n, l)
}

func (s *spyStore) ClaimRoom(ctx context.Context, room, org string, ttl, tokens time.Duration) (string, error) {
	if err := s.hit("ClaimRoom"); err != nil {
		return "", err
	}
	return s.Store.ClaimRoom(ctx, room, org, ttl, tokens)
}

func (s *spyStore) ReleaseRoom(ctx context.Context, room, org string) error {
	if err := s.hit("ReleaseRoom"); err != nil {
		return err
	}
	s.mu.Lock()
	s.released = append(s.released, room)
	s.mu.Unlock()
	return s.Store.ReleaseRoom(ctx, room, org)
}

func (s *spyStore) ReleaseRoomClaimedBy(ctx context.Context, room, org string, at time.Time, keep time.Duration) (bool, error) {
	if err := s.hit("ReleaseRoomClaimedBy"); err != nil {
		return false, err
	}
	released, err := s.Store.ReleaseRoomClaimedBy(ctx, room, org, at, keep)
	if released {
		s.mu.Lock()
		s.released = append(s.released, room)
		s.mu.Unlock()
	}
	return released, err
}

func (s *spyStore) RecordWebhookEvent(ctx context.Context, id string, ttl time.Duration) error {
	if err := s.hit("RecordWebhookEvent"); err != nil {
		return err
	}
	return s.Store.RecordWebhookEvent(ctx, id, ttl)
}

func (s *spyStore) ForgetWebhookEvent(ctx context.Context, id string) error {
	if err := s.hit("ForgetWebhookEvent"); err != nil {
		return err
	}
	return s.Store.ForgetWebhookEvent(ctx, id)
}

func (s *spyStore) Allow(ctx context.Context, key string, l store.Limit) (store.Result, error) {
	if err := s.hit("Allow"); err != nil {
		return store.Result{}, err
	}
	return s.Store.Allow(ctx, key, l)
}

func (s *spyStore) Ping(ctx context.Context) error {
	if err := s.hit("Ping"); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

// fakeLiveKit keeps rooms in a map and fails the calls tests ask it to.
type fakeLiveKit struct {
	mu                        sync.Mutex
	rooms                     map[string]*lkproto.Room
	tokenErr, lookupErr       error
	setOwnerErr, roomsErr     error
	muteErr                   error
	event                     *lkproto.WebhookEvent
	webhookErr                error
	tokens                    []livekit.Participant
	lookups, ownersSet, muted int
	ttl                       time.Duration   // TokenTTL; 5 minutes when 0
	extra                     []*lkproto.Room // AllRooms lists these too (duplicates, odd names)
	deleted                   []string        // rooms DeleteRoom ended
}

func (f *fakeLiveKit) Token(p livekit.Participant) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokenErr != nil {
		return "", f.tokenErr
	}
	f.tokens = append(f.tokens, p)
	return "lk-token-for-" + p.Room, nil
}

func (f *fakeLiveKit) URL() string    { return "wss://livekit.test" }
func (f *fakeLiveKit) Server() string { return "livekit.test:443" }
func (f *fakeLiveKit) TokenTTL() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ttl == 0 {
		return 5 * time.Minute
	}
	return f.ttl
}

func (f *fakeLiveKit) LookupRoom(_ context.Context, room string) (livekit.RoomState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.lookupErr != nil {
		return livekit.RoomState{}, f.lookupErr
	}
	r, ok := f.rooms[room]
	if !ok {
		return livekit.RoomState{}, nil
	}
	return livekit.RoomState{Exists: true, Owner: livekit.OwnerOf(r)}, nil
}

func (f *fakeLiveKit) SetRoomOwner(_ context.Context, room, org, agent string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ownersSet++
	if f.setOwnerErr != nil {
		return f.setOwnerErr
	}
	f.rooms[room] = ownedRoom(room, org)
	return nil
}

func (f *fakeLiveKit) Rooms(_ context.Context, org string) ([]*lkproto.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.roomsErr != nil {
		return nil, f.roomsErr
	}
	var out []*lkproto.Room
	for _, r := range f.rooms {
		if livekit.OwnerOf(r) == org {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeLiveKit) DeleteRoom(_ context.Context, room string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.roomsErr != nil {
		return f.roomsErr
	}
	delete(f.rooms, room)
	f.deleted = append(f.deleted, room)
	return nil
}

func (f *fakeLiveKit) AllRooms(context.Context) ([]*lkproto.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.roomsErr != nil {
		return nil, f.roomsErr
	}
	return append(slices.Collect(maps.Values(f.rooms)), f.extra...), nil
}

func (f *fakeLiveKit) Room(_ context.Context, room, org string) (*lkproto.Room, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.rooms[room]; ok && livekit.OwnerOf(r) == org {
		return r, nil
	}
	return nil, livekit.ErrNotFound
}

func (f *fakeLiveKit) Participants(context.Context, string) ([]*lkproto.ParticipantInfo, error) {
	return []*lkproto.ParticipantInfo{{Sid: "PA_1", Identity: "user-1", Permission: &lkproto.ParticipantPermission{CanPublish: true}}}, nil
}

func (f *fakeLiveKit) RemoveParticipant(context.Context, string, string) error { return nil }

func (f *fakeLiveKit) MuteTrack(_ context.Context, _, _, sid string, muted bool) (*lkproto.TrackInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.muted++
	if f.muteErr != nil {
		return nil, f.muteErr
	}
	return &lkproto.TrackInfo{Sid: sid, Muted: muted}, nil
}

func (f *fakeLiveKit) ReceiveWebhook(*http.Request) (*lkproto.WebhookEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.event, f.webhookErr
}

func ownedRoom(name, org string) *lkproto.Room {
	md, _ := json.Marshal(livekit.RoomMetadata{AuthID: org})
	return &lkproto.Room{Name: name, Sid: "RM_" + name, Metadata: string(md)}
}

// logLines parses the JSON log lines written to w.
func logLines(t *testing.T, w lockedWriter) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// unit is a server on loopback built from fakes.
type unit struct {
	URL   string
	auth  *fakeAuth
	store *spyStore
	iss   *fakeIssuer
	ver   *fakeVerifier
	lk    *fakeLiveKit
	logs  lockedWriter
	pk    string // acme's bot's publishable key
	mets  *metrics.Metrics
	deps  Deps
}

const publicOrigin = "https://demo.acme.example"

func newUnit(t *testing.T, withLiveKit bool) *unit {
	t.Helper()
	mem := memory.New(time.Minute)
	t.Cleanup(func() { mem.Close() })
	return newUnitWithStore(t, withLiveKit, mem)
}

// newUnitWithStore is newUnit on the given store (a memory store on a
// test's clock).
func newUnitWithStore(t *testing.T, withLiveKit bool, mem store.Store) *unit {
	t.Helper()
	return newUnitWithLog(t, withLiveKit, mem, jsonlog.New)
}

// newUnitWithLog is newUnitWithStore with the logger newLog makes over the
// unit's log buffer (newUnit's is the broker's own, jsonlog.New).
func newUnitWithLog(t *testing.T, withLiveKit bool, mem store.Store, newLog func(io.Writer) *slog.Logger) *unit {
	t.Helper()
	pk, err := apikey.New(apikey.Publishable, apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: enterprise
    rate_per_minute: 100000
    agents:
      - id: bot
        channels: [webrtc, chat]
        public:
          key_hash: "` + apikey.Hash(pk) + `"
          allowed_origins: ["` + publicOrigin + `"]
  - id: globex
    tier: free
    agents: [{id: hank, channels: [chat]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	key, iss, ver := ticketKeys(t)
	u := &unit{
		auth:  &fakeAuth{principal: &auth.Principal{Org: "acme", Method: auth.MethodAPIKey, KeyID: "main"}},
		store: &spyStore{Store: mem, fail: map[string]error{}, calls: map[string]int{}},
		iss:   &fakeIssuer{Issuer: iss},
		ver:   &fakeVerifier{Verifier: ver},
		logs:  lockedWriter{&sync.Mutex{}, &bytes.Buffer{}},
		pk:    pk,
	}
	u.mets = metrics.New("test")
	d := Deps{
		Tenants: config.StaticHolder(ten), Auth: u.auth, Store: u.store, Issuer: u.iss, Verifier: u.ver,
		JWKS: token.NewJWKS(key), Log: newLog(u.logs), Metrics: u.mets,
		PublicURL: "http://broker.test", Leeway: token.DefaultLeeway, ConnectRate: 1000, PublicRate: 1000,
		AuthRequired: true,
	}
	if withLiveKit {
		u.lk = &fakeLiveKit{rooms: map[string]*lkproto.Room{}}
		d.LiveKit = u.lk
	}
	u.deps = d
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	return u
}

type answer struct {
	status int
	body   map[string]any
	header http.Header
}

// code is the answer's error code, or "" for a success.
func (a answer) code() string { s, _ := a.body["error"].(string); return s }

func (u *unit) do(t *testing.T, method, path, cred, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	}
	return a
}

func (a answer) expect(t *testing.T, status int, code string) {
	t.Helper()
	if a.status != status || a.code() != code {
		t.Fatalf("got %d %v, want %d %q", a.status, a.body, status, code)
	}
}

const mintBody = `{"agent":"bot","channel":"webrtc"}`

// mint gets a ticket for acme's bot through POST /token.
func (u *unit) mint(t *testing.T) string {
	t.Helper()
	a := u.do(t, "POST", "/token", "sk_any", mintBody)
	a.expect(t, 201, "")
	return a.body["token"].(string)
}

func TestMintUnit(t *testing.T) {
	t.Run("store down: 503, no ticket handed out, none signed", func(t *testing.T) {
		u := newUnit(t, false)
		u.store.failOn("PutNonce", storeDown)
		a := u.do(t, "POST", "/token", "sk_any", mintBody)
		a.expect(t, 503, "store_unavailable")
		if _, ok := a.body["token"]; ok {
			t.Fatal("a ticket was handed out")
		}
		// The ticket is signed before its nonce (kept with the ticket's
		// record) is stored: the ticket signed for a request the store
		// step refused is never handed out, and does not redeem.
		if len(u.iss.signed) != 1 {
			t.Fatalf("%d tickets signed", len(u.iss.signed))
		}
		u.store.failOn("PutNonce", nil)
		u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+u.iss.signed[0]+`"}`).expect(t, 401, "token_used")
	})
	t.Run("signer fails: 500 jwt_signing_error, no ticket, counted once", func(t *testing.T) {
		// The signature comes before the store step (count and nonce): a
		// signing failure stores nothing, and the request is counted once,
		// on the way out.
		u := newUnit(t, false)
		u.iss.err = errInjected
		u.do(t, "POST", "/token", "sk_any", mintBody).expect(t, 500, "jwt_signing_error")
		if n := u.store.count("PutNonce"); n != 0 {
			t.Fatalf("PutNonce called %d times", n)
		}
		if n := u.store.count("Allow"); n != 1 {
			t.Fatalf("the request was counted by Allow %d times, want 1", n)
		}
	})
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"auth service unreachable", &auth.Error{Kind: auth.ErrServiceUnavailable, Reason: auth.ReasonAuthServiceUnreachable}, 503, "auth_service_unavailable"},
		{"auth service said 403", &auth.Error{Kind: auth.ErrServiceDenied, Reason: auth.AuthServiceStatus(403)}, 401, "auth_service_error"},
		{"auth service said 500", &auth.Error{Kind: auth.ErrServiceFailed, Reason: auth.AuthServiceStatus(500)}, 502, "auth_service_error"},
		{"unknown key", &auth.Error{Kind: auth.ErrUnauthorized, Reason: auth.ReasonUnknownKey}, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnit(t, false)
			u.auth.err = tc.err
			u.do(t, "POST", "/token", "sk_any", mintBody).expect(t, tc.status, tc.code)
			if len(u.iss.signed) != 0 || u.store.count("PutNonce") != 0 {
				t.Fatal("a refused caller got a ticket signed or stored")
			}
		})
	}
	t.Run("principal without tokens:create: 403, nothing signed", func(t *testing.T) {
		u := newUnit(t, false)
		u.auth.principal.Scopes = []config.Scope{config.ScopeTokensRedeem}
		u.do(t, "POST", "/token", "sk_any", mintBody).expect(t, 403, "insufficient_scope")
		if len(u.iss.signed) != 0 {
			t.Fatal("signed for a principal without the scope")
		}
	})
	t.Run("principal of an org the tenants lack: 500 config_error", func(t *testing.T) {
		u := newUnit(t, false)
		u.auth.principal.Org = "initech"
		u.do(t, "POST", "/token", "sk_any", mintBody).expect(t, 500, "config_error")
	})
}

func TestRedeemUnit(t *testing.T) {
	t.Run("expired: 401 token_expired, nonce untouched", func(t *testing.T) {
		u := newUnit(t, false)
		tok := u.mint(t)
		u.ver.err = fmt.Errorf("%w", token.ErrExpired)
		u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`).expect(t, 401, "token_expired")
		if n := u.store.count("ConsumeNonce"); n != 0 {
			t.Fatalf("ConsumeNonce called %d times", n)
		}
	})
	t.Run("store down while consuming: 503", func(t *testing.T) {
		u := newUnit(t, false)
		tok := u.mint(t)
		u.store.failOn("ConsumeNonce", storeDown)
		u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`).expect(t, 503, "store_unavailable")
	})
	t.Run("another org's redeemer: 401 token_invalid, ticket still usable", func(t *testing.T) {
		u := newUnit(t, false)
		tok := u.mint(t)
		u.auth.principal.Org = "globex"
		u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`).expect(t, 401, "token_invalid")
		u.auth.principal.Org = "acme"
		a := u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`)
		a.expect(t, 200, "")
		if a.body["org"] != "acme" || a.body["agent"] != "bot" || a.body["channel"] != "webrtc" {
			t.Fatalf("redeemed %v", a.body)
		}
	})
}

func TestConnectUnit(t *testing.T) {
	t.Run("claim fails: 503, ticket not consumed", func(t *testing.T) {
		u := newUnit(t, true)
		tok := u.mint(t)
		u.store.failOn("ClaimRoom", storeDown)
		u.do(t, "POST", "/connect", tok, "").expect(t, 503, "store_unavailable")
		if n := u.store.count("ConsumeNonce"); n != 0 {
			t.Fatalf("ConsumeNonce called %d times", n)
		}
		u.store.failOn("ClaimRoom", nil)
		u.do(t, "POST", "/connect", tok, "").expect(t, 201, "")
	})
	t.Run("LiveKit signer fails: 500 jwt_signing_error, nothing claimed or consumed", func(t *testing.T) {
		u := newUnit(t, true)
		tok := u.mint(t)
		u.lk.tokenErr = errInjected
		u.do(t, "POST", "/connect", tok, "").expect(t, 500, "jwt_signing_error")
		if u.store.count("ClaimRoom") != 0 || u.store.count("ConsumeNonce") != 0 {
			t.Fatal("a room was claimed or the ticket consumed")
		}
	})
	t.Run("consume fails after the claim: 503, the claim released", func(t *testing.T) {
		u := newUnit(t, true)
		tok := u.mint(t)
		u.store.failOn("ConsumeNonce", storeDown)
		u.do(t, "POST", "/connect", tok, "").expect(t, 503, "store_unavailable")
		if u.store.count("ClaimRoom") != 1 || len(u.store.released) != 1 || !strings.HasPrefix(u.store.released[0], "agent_bot_") {
			t.Fatalf("claims %d, released %v", u.store.count("ClaimRoom"), u.store.released)
		}
	})
	t.Run("no LiveKit: 501 before the ticket is looked at", func(t *testing.T) {
		u := newUnit(t, false)
		tok := u.mint(t)
		u.do(t, "POST", "/connect", tok, "").expect(t, 501, "livekit_not_configured")
		if u.ver.calls != 0 {
			t.Fatal("the ticket was verified")
		}
	})
	t.Run("success: the room is the org's and the token LiveKit's", func(t *testing.T) {
		u := newUnit(t, true)
		tok := u.mint(t)
		a := u.do(t, "POST", "/connect", tok, "")
		a.expect(t, 201, "")
		room, _ := a.body["room_name"].(string)
		if a.body["participant_token"] != "lk-token-for-"+room || a.body["server_url"] != "wss://livekit.test" {
			t.Fatalf("answer %v", a.body)
		}
		if owner, err := u.store.RoomOwner(context.Background(), room); err != nil || owner != "acme" {
			t.Fatalf("room owner %q, %v", owner, err)
		}
		if p := u.lk.tokens[0]; p.Org != "acme" || p.Agent != "bot" || !p.CanPublish || p.Attributes["channel"] != "webrtc" {
			t.Fatalf("participant %+v", p)
		}
		u.do(t, "POST", "/connect", tok, "").expect(t, 401, "token_used")
	})
}

func TestLiveKitTokenUnit(t *testing.T) {
	const named = `{"room_name":"agent_bot_1700000000_abcdefghijkl","participant_identity":"u1"}`
	t.Run("LiveKit unreachable for a named room: 502, nothing claimed", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.lookupErr = fmt.Errorf("%w: list_rooms: EOF", livekit.ErrUnavailable)
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 502, "livekit_unavailable")
		if n := u.store.count("ClaimRoom"); n != 0 {
			t.Fatalf("ClaimRoom called %d times", n)
		}
	})
	t.Run("another org's live room: 403, nothing claimed", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.rooms["agent_bot_1700000000_abcdefghijkl"] = ownedRoom("agent_bot_1700000000_abcdefghijkl", "globex")
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 403, "room_forbidden")
		if n := u.store.count("ClaimRoom"); n != 0 {
			t.Fatalf("ClaimRoom called %d times", n)
		}
	})
	t.Run("signer fails: 500 jwt_signing_error, LiveKit not asked", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.tokenErr = errInjected
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 500, "jwt_signing_error")
		if u.lk.lookups != 0 || u.store.count("ClaimRoom") != 0 {
			t.Fatal("LiveKit or the store was asked")
		}
	})
	t.Run("a live room without metadata: refused unless the caller holds its name; then its owner is written, failing that 502", func(t *testing.T) {
		u := newUnit(t, true)
		const room = "agent_bot_1700000000_abcdefghijkl"
		u.lk.rooms[room] = &lkproto.Room{Name: room}
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 403, "room_forbidden")
		if u.lk.ownersSet != 0 || u.store.count("ClaimRoom") != 0 {
			t.Fatal("a live room of no known owner was claimed or given an owner")
		}
		if _, err := u.store.Store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); err != nil {
			t.Fatal(err)
		}
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 403, "room_forbidden")
		if err := u.store.Store.ReleaseRoom(context.Background(), room, "globex"); err != nil {
			t.Fatal(err)
		}
		if _, err := u.store.Store.ClaimRoom(context.Background(), room, "acme", RoomOwnerTTL, 0); err != nil {
			t.Fatal(err)
		}
		u.lk.setOwnerErr = fmt.Errorf("%w: update_room_metadata", livekit.ErrUnavailable)
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 502, "livekit_unavailable")
		u.lk.setOwnerErr = nil
		u.do(t, "POST", "/livekit/token", "sk_any", named).expect(t, 201, "")
		if u.lk.ownersSet != 2 || livekit.OwnerOf(u.lk.rooms["agent_bot_1700000000_abcdefghijkl"]) != "acme" {
			t.Fatalf("owner not written: %d calls", u.lk.ownersSet)
		}
	})
	t.Run("generated room: no LiveKit call", func(t *testing.T) {
		u := newUnit(t, true)
		a := u.do(t, "POST", "/livekit/token", "sk_any", `{"agent":"bot","channel":"chat"}`)
		a.expect(t, 201, "")
		if u.lk.lookups != 0 || u.lk.tokens[0].CanPublish {
			t.Fatalf("lookups %d, participant %+v", u.lk.lookups, u.lk.tokens[0])
		}
	})
}

func TestRoomEndpointsUnit(t *testing.T) {
	t.Run("LiveKit down: 502", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.roomsErr = fmt.Errorf("%w: list_rooms: EOF", livekit.ErrUnavailable)
		u.do(t, "GET", "/livekit/rooms", "sk_any", "").expect(t, 502, "livekit_unavailable")
	})
	t.Run("only the caller's rooms, another org's is not found", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.rooms["demo_mine"] = ownedRoom("demo_mine", "acme")
		u.lk.rooms["demo_theirs"] = ownedRoom("demo_theirs", "globex")
		a := u.do(t, "GET", "/livekit/rooms", "sk_any", "")
		a.expect(t, 200, "")
		rs, _ := a.body["rooms"].([]any)
		if len(rs) != 1 || rs[0].(map[string]any)["name"] != "demo_mine" {
			t.Fatalf("rooms %v", a.body)
		}
		u.do(t, "GET", "/livekit/rooms/demo_theirs", "sk_any", "").expect(t, 404, "room_not_found")
		a = u.do(t, "GET", "/livekit/rooms/demo_mine", "sk_any", "")
		a.expect(t, 200, "")
		if ps, _ := a.body["participants"].([]any); len(ps) != 1 {
			t.Fatalf("participants %v", a.body)
		}
	})
	t.Run("mute: an unknown track is 404, another org's room is not touched", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.rooms["demo_mine"] = ownedRoom("demo_mine", "acme")
		u.lk.rooms["demo_theirs"] = ownedRoom("demo_theirs", "globex")
		u.lk.muteErr = fmt.Errorf("%w: track", livekit.ErrNotFound)
		body := `{"room_name":"demo_mine","participant_identity":"user-1","track_sid":"TR_1","muted":true}`
		u.do(t, "POST", "/livekit/participant/mute", "sk_any", body).expect(t, 404, "room_not_found")
		u.lk.muteErr = nil
		u.do(t, "POST", "/livekit/participant/mute", "sk_any", strings.Replace(body, "demo_mine", "demo_theirs", 1)).expect(t, 404, "room_not_found")
		if u.lk.muted != 1 {
			t.Fatalf("MuteTrack called %d times, want 1 (never for another org's room)", u.lk.muted)
		}
	})
	t.Run("principal without rooms:write cannot remove", func(t *testing.T) {
		u := newUnit(t, true)
		u.auth.principal.Scopes = []config.Scope{config.ScopeRoomsRead}
		u.do(t, "DELETE", "/livekit/participant", "sk_any", `{"room_name":"demo_mine","participant_identity":"u"}`).expect(t, 403, "insufficient_scope")
	})
}

func TestWebhookUnit(t *testing.T) {
	t.Run("signature does not verify: 401, nothing recorded or released", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.webhookErr = fmt.Errorf("%w: bad signature", livekit.ErrWebhook)
		u.do(t, "POST", "/livekit/webhook", "", "{}").expect(t, 401, "unauthorized")
		if n := u.store.count("RecordWebhookEvent") + u.store.count("ReleaseRoomClaimedBy"); n != 0 {
			t.Fatalf("the store was called %d times", n)
		}
	})
	t.Run("room_finished releases; a store failure is 503 so LiveKit retries, and the retry is handled", func(t *testing.T) {
		u := newUnit(t, true)
		if _, err := u.store.ClaimRoom(context.Background(), "demo_x", "acme", time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		u.lk.event = &lkproto.WebhookEvent{Event: "room_finished", Id: "EV_1", CreatedAt: time.Now().Add(time.Minute).Unix(), Room: ownedRoom("demo_x", "acme")}
		u.store.failOn("ReleaseRoomClaimedBy", storeDown)
		u.do(t, "POST", "/livekit/webhook", "", "{}").expect(t, 503, "store_unavailable")
		if n := u.store.count("ForgetWebhookEvent"); n != 1 {
			t.Fatalf("the unhandled event was forgotten %d times, want 1", n)
		}
		u.store.failOn("ReleaseRoomClaimedBy", nil)
		u.do(t, "POST", "/livekit/webhook", "", "{}").expect(t, 200, "")
		if len(u.store.released) != 1 || u.store.released[0] != "demo_x" {
			t.Fatalf("released %v", u.store.released)
		}
	})
	t.Run("other events release nothing", func(t *testing.T) {
		u := newUnit(t, true)
		u.lk.event = &lkproto.WebhookEvent{Event: "participant_joined", Id: "EV_2", CreatedAt: time.Now().Add(time.Minute).Unix(), Room: ownedRoom("demo_x", "acme")}
		u.do(t, "POST", "/livekit/webhook", "", "{}").expect(t, 200, "")
		if n := u.store.count("ReleaseRoomClaimedBy") + u.store.count("ReleaseRoom"); n != 0 {
			t.Fatalf("released %d times", n)
		}
	})
}

func TestPublicTokenUnit(t *testing.T) {
	body := `{"agent":"bot","channel":"webrtc"}`
	t.Run("store down: 503, no ticket", func(t *testing.T) {
		u := newUnit(t, false)
		u.store.failOn("PutNonce", storeDown)
		a := u.do(t, "POST", "/public/token", u.pk, body, "Origin", publicOrigin)
		a.expect(t, 503, "store_unavailable")
		if _, ok := a.body["token"]; ok {
			t.Fatal("a ticket was handed out")
		}
	})
	t.Run("the authenticator is never asked about a publishable key", func(t *testing.T) {
		u := newUnit(t, false)
		u.do(t, "POST", "/public/token", u.pk, body, "Origin", publicOrigin).expect(t, 201, "")
		u.do(t, "POST", "/public/token", "pk_live_"+strings.Repeat("x", 43), body, "Origin", publicOrigin).expect(t, 401, "unauthorized")
		if u.auth.calls != 0 {
			t.Fatalf("Authenticate called %d times", u.auth.calls)
		}
	})
	t.Run("signer fails: 500", func(t *testing.T) {
		u := newUnit(t, false)
		u.iss.err = errInjected
		u.do(t, "POST", "/public/token", u.pk, body, "Origin", publicOrigin).expect(t, 500, "jwt_signing_error")
	})
}

// TestRequestLogLinesCarryRequestID: every line a request writes carries
// its request_id (the request-scoped logger), whatever wrote it: an audit
// event, an error, /readyz.
func TestRequestLogLinesCarryRequestID(t *testing.T) {
	u := newUnit(t, true)
	tok := u.mint(t)
	u.logs.mu.Lock()
	u.logs.b.Reset()
	u.logs.mu.Unlock()
	u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`, "X-Request-Id", "req-redeem").expect(t, 200, "")
	u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+tok+`"}`, "X-Request-Id", "req-replay").expect(t, 401, "token_used")
	u.auth.err = &auth.Error{Kind: auth.ErrUnauthorized, Reason: auth.ReasonUnknownKey}
	u.do(t, "POST", "/token", "sk_any", mintBody, "X-Request-Id", "req-authfail").expect(t, 401, "unauthorized")
	u.auth.err = nil
	u.lk.tokenErr = errInjected
	u.do(t, "POST", "/livekit/token", "sk_any", `{"agent":"bot"}`, "X-Request-Id", "req-500").expect(t, 500, "jwt_signing_error")
	u.store.failOn("Ping", storeDown)
	u.do(t, "GET", "/readyz", "", "", "X-Request-Id", "req-ready").expect(t, 503, "store_unavailable")

	want := map[string]string{ // request id -> an event its lines must include
		"req-redeem": "token.redeem", "req-replay": "token.replay", "req-authfail": "auth.failure",
		"req-500": "http.error", "req-ready": "readyz",
	}
	seen := map[string]bool{}
	for _, line := range logLines(t, u.logs) {
		id, _ := line["request_id"].(string)
		if _, ok := want[id]; !ok {
			t.Errorf("line without its request's id: %v", line)
			continue
		}
		if line["event"] == want[id] {
			seen[id] = true
		}
	}
	for id, event := range want {
		if !seen[id] {
			t.Errorf("no %s line with request_id %s", event, id)
		}
	}
}
