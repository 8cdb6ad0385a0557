package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// These tests cover POST /token/redeem's fast path, which skips the
// signature of a ticket whose nonce is kept with its record (the ticket's
// MAC). The rule under test: the signature is skipped only when the
// request succeeds; every refusal is what it was before records. The
// reference for "before" is the same server with the fast path off
// (fakeVerifier.noRecords), which runs the code as it was: verify, then
// consume.

// counters returns the refusal and rate-limit counters of u, by name and
// label, and the redemptions.
func (u *unit) counters(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := u.mets.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		switch f.GetName() {
		case "voicebroker_tokens_refused_total", "voicebroker_rate_limited_total", "voicebroker_tokens_redeemed_total",
			"voicebroker_auth_failures_total":
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// reshape returns tok with its claims changed by edit and its signature
// kept (so no longer valid), or, with sig set, that signature instead.
func reshape(t *testing.T, tok string, edit func(map[string]any), sig []byte) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	payload := parts[1]
	if edit != nil {
		edit(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		payload = base64.RawURLEncoding.EncodeToString(out)
	}
	s := parts[2]
	if sig != nil {
		s = base64.RawURLEncoding.EncodeToString(sig)
	}
	return parts[0] + "." + payload + "." + s
}

func randomSig(t *testing.T) []byte {
	sig := make([]byte, 64)
	if _, err := rand.Read(sig); err != nil {
		t.Fatal(err)
	}
	return sig
}

// forgeries are the tickets a client who cannot sign can make from a
// genuine one: its bytes with another signature, and its claims changed
// in every way a refusal path looks at.
var forgeries = []struct {
	name string
	make func(t *testing.T, genuine string) string
}{
	{"genuine claims, random signature", func(t *testing.T, g string) string { return reshape(t, g, nil, randomSig(t)) }},
	{"genuine claims, signature of another ticket", func(t *testing.T, g string) string { return g }}, // replaced below
	{"identity changed", func(t *testing.T, g string) string {
		return reshape(t, g, func(m map[string]any) { m["sub"] = "mallory" }, nil)
	}},
	{"another org's agent", func(t *testing.T, g string) string {
		return reshape(t, g, func(m map[string]any) { m["org"], m["agent"] = "globex", "hank" }, nil)
	}},
	{"an agent that does not exist", func(t *testing.T, g string) string {
		return reshape(t, g, func(m map[string]any) { m["agent"] = "ghost" }, nil)
	}},
	{"channel changed", func(t *testing.T, g string) string {
		return reshape(t, g, func(m map[string]any) { m["channel"] = "chat" }, nil)
	}},
	{"expired", func(t *testing.T, g string) string {
		past := time.Now().Add(-time.Hour).Unix()
		return reshape(t, g, func(m map[string]any) { m["iat"], m["nbf"], m["exp"] = past, past, past+60 }, nil)
	}},
	{"another nonce", func(t *testing.T, g string) string {
		return reshape(t, g, func(m map[string]any) { m["jti"] = "AAAAAAAAAAAAAAAAAAAAAA" }, nil)
	}},
}

// TestRedeemRefusalsAsBeforeRecords sends forged tickets through every
// refusal path of POST /token/redeem, on the server and on the reference
// (the fast path off), and requires the same answer: status, error code,
// Retry-After and RateLimit-Remaining, and the same counters (the refusal
// reason of the metrics and audit). A forged ticket gets token_invalid
// whatever its claims say, so no refusal tells a client who cannot sign
// whether another org's agent exists, or a nonce's state.
func TestRedeemRefusalsAsBeforeRecords(t *testing.T) {
	// Each path sets up u (a fresh unit) and returns the genuine ticket
	// the forgeries are made from, and the principal's org.
	paths := []struct {
		name  string
		setup func(t *testing.T, u *unit) string
	}{
		{"nonce kept with its record", func(t *testing.T, u *unit) string { return u.mint(t) }},
		{"nonce consumed", func(t *testing.T, u *unit) string {
			tok := u.mint(t)
			u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok)).expect(t, 200, "")
			return tok
		}},
		{"nonce never stored", func(t *testing.T, u *unit) string {
			tok := u.mint(t)
			c, err := u.ver.Verifier.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.store.Store.ConsumeNonce(context.Background(), store.Nonce{Org: c.Org, ID: c.ID}, nil); err != nil {
				t.Fatal(err)
			}
			return tok
		}},
		{"nonce kept without a record (an older broker's)", func(t *testing.T, u *unit) string {
			return legacyTicket(t, u)
		}},
		{"store down", func(t *testing.T, u *unit) string {
			tok := u.mint(t)
			u.store.failOn("ConsumeNonce", storeDown)
			return tok
		}},
		{"redeemer of another org", func(t *testing.T, u *unit) string {
			tok := u.mint(t)
			u.auth.principal.Org = "globex"
			return tok
		}},
		{"rate limited", func(t *testing.T, u *unit) string {
			// globex is on the free tier: its budget runs out quickly.
			u.auth.principal.Org = "globex"
			a := u.do(t, "POST", "/token", "sk_any", `{"agent":"hank","channel":"chat"}`)
			a.expect(t, 201, "")
			for i := 0; ; i++ {
				if i > 10_000 {
					t.Fatal("globex's budget never ran out")
				}
				if u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"x"}`).status == 429 {
					break
				}
			}
			return a.body["token"].(string)
		}},
	}
	for _, p := range paths {
		for i, f := range forgeries {
			t.Run(p.name+"/"+f.name, func(t *testing.T) {
				var got [2]answer
				var counts [2]map[string]float64
				for j, fastOff := range []bool{false, true} {
					u := newUnit(t, false)
					u.ver.noRecords = fastOff
					genuine := p.setup(t, u)
					forged := f.make(t, genuine)
					if i == 1 {
						// Another genuine ticket's signature on these claims.
						other, _, err := u.iss.Issuer.Mint(token.Ticket{Org: "acme", Agent: "bot", Channel: "webrtc"})
						if err != nil {
							t.Fatal(err)
						}
						forged = reshape(t, genuine, nil, sigOf(t, other))
					}
					before := u.counters(t)
					got[j] = u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(forged))
					counts[j] = delta(before, u.counters(t))
					if got[j].status == 200 {
						t.Fatalf("a forged ticket redeemed: %v", got[j].body)
					}
				}
				if got[0].status != got[1].status || got[0].code() != got[1].code() {
					t.Fatalf("answer %d %q, before records %d %q", got[0].status, got[0].code(), got[1].status, got[1].code())
				}
				// The values of Retry-After and RateLimit-Remaining move with
				// the clock (acme refills one request every 0.6 ms): their
				// presence is compared.
				if got[0].header.Get("RateLimit-Limit") != got[1].header.Get("RateLimit-Limit") {
					t.Fatalf("RateLimit-Limit %q, before records %q", got[0].header.Get("RateLimit-Limit"), got[1].header.Get("RateLimit-Limit"))
				}
				for _, h := range []string{"Retry-After", "RateLimit-Remaining", "RateLimit-Reset"} {
					if (got[0].header.Get(h) == "") != (got[1].header.Get(h) == "") {
						t.Fatalf("%s %q, before records %q", h, got[0].header.Get(h), got[1].header.Get(h))
					}
				}
				if !maps.Equal(counts[0], counts[1]) {
					t.Fatalf("counters %v, before records %v", counts[0], counts[1])
				}
				// Whatever the path, a forged ticket is token_invalid (429
				// over the limit, 503 with the store down, as before).
				want := "token_invalid"
				if p.name == "rate limited" {
					want = "rate_limited"
				}
				if got[0].code() != want || counts[0]["voicebroker_tokens_refused_total,reason=token_invalid"] != 1 {
					t.Fatalf("answer %d %q, counters %v; want %s, counted as token_invalid", got[0].status, got[0].code(), counts[0], want)
				}
			})
		}
	}
}

// TestRedeemFastPathSkipsTheSignature: a ticket kept with its record
// redeems without Verify, once; the forgeries of it that a refusal path
// verified leave it redeemable.
func TestRedeemFastPathSkipsTheSignature(t *testing.T) {
	u := newUnit(t, false)
	tok := u.mint(t)
	for _, f := range forgeries[:1] {
		u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(f.make(t, tok))).expect(t, 401, "token_invalid")
	}
	calls := u.ver.calls
	a := u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok))
	a.expect(t, 200, "")
	if u.ver.calls != calls {
		t.Fatalf("Verify called %d times for a recorded ticket", u.ver.calls-calls)
	}
	if a.body["org"] != "acme" || a.body["agent"] != "bot" {
		t.Fatalf("redeemed %v", a.body)
	}
	u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok)).expect(t, 401, "token_used")
	if u.ver.calls != calls+1 {
		t.Fatalf("the replay was refused without verifying the signature (%d calls)", u.ver.calls-calls)
	}
}

// TestRedeemLegacyRecord: a genuine ticket whose nonce an older broker
// stored (no record) redeems the slow way, counted once against the
// limit; a forgery of it is token_invalid and leaves it redeemable.
func TestRedeemLegacyRecord(t *testing.T) {
	u := newUnit(t, false)
	tok := legacyTicket(t, u)
	u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(reshape(t, tok, nil, randomSig(t)))).expect(t, 401, "token_invalid")
	calls := u.ver.calls
	before := u.counters(t)
	spy := &limitSpy{Store: u.store.Store}
	u.store.Store = spy
	a := u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok))
	a.expect(t, 200, "")
	if u.ver.calls != calls+1 {
		t.Fatalf("Verify called %d times for a legacy ticket, want 1", u.ver.calls-calls)
	}
	// Counted once: by the first consume (with the record, limited); the
	// second (without a record) counts nothing, and nothing else counts.
	spy.mu.Lock()
	got := strings.Join(spy.calls, " ")
	spy.mu.Unlock()
	if got != "consume+record+limit consume" {
		t.Fatalf("store calls %q, want a limited consume with the record, then a bare one", got)
	}
	if a.header.Get("RateLimit-Remaining") == "" {
		t.Fatal("no RateLimit headers")
	}
	if d := delta(before, u.counters(t)); d["voicebroker_tokens_redeemed_total,org=acme,via=redeem"] != 1 || len(d) != 1 {
		t.Fatalf("counters %v", d)
	}
	u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok)).expect(t, 401, "token_used")
}

// limitSpy records the nonce calls a request makes, and whether each
// carried a record and a limit.
type limitSpy struct {
	store.Store
	mu    sync.Mutex
	calls []string
}

func (l *limitSpy) add(c string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *limitSpy) ConsumeNonce(ctx context.Context, n store.Nonce, limit *store.Limit) (store.Result, error) {
	c := "consume"
	if n.Record != "" {
		c += "+record"
	}
	if limit != nil {
		c += "+limit"
	}
	l.add(c)
	return l.Store.ConsumeNonce(ctx, n, limit)
}

func (l *limitSpy) Allow(ctx context.Context, key string, limit store.Limit) (store.Result, error) {
	l.add("allow")
	return l.Store.Allow(ctx, key, limit)
}

// legacyTicket mints a ticket and stores its nonce again the way a broker
// before records did: with no record.
func legacyTicket(t *testing.T, u *unit) string {
	t.Helper()
	tok := u.mint(t)
	c, err := u.ver.Verifier.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := store.Nonce{Org: c.Org, ID: c.ID}
	if _, err := u.store.Store.ConsumeNonce(ctx, n, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := u.store.Store.PutNonce(ctx, n, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	return tok
}

func sigOf(t *testing.T, tok string) []byte {
	t.Helper()
	sig, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func redeemBody(tok string) string { return `{"token":"` + tok + `"}` }

// delta is after minus before, without the zeros.
func delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}
