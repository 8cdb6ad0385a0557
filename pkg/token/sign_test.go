package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/internal/compactjson"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// golangJWT signs c as the issuer did before it built tickets itself:
// golang-jwt's SignedString with typ and kid in the header.
func golangJWT(t testing.TB, method jwt.SigningMethod, kid string, priv any, c *token.Claims) (string, error) {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["typ"] = token.Type
	tok.Header["kid"] = kid
	return tok.SignedString(priv)
}

// isGolangJWT fails t unless got, an Ed25519 ticket, is want, golang-jwt's
// ticket for the same claims, byte for byte, apart from the metadata's
// <, >, &, U+2028 and U+2029, which golang-jwt (json.Marshal) escapes and a
// ticket leaves as they are: the header segments are the same, the claims
// HTML-escaped are golang-jwt's exactly, and got's signature verifies. A
// ticket with none of those characters is want exactly.
func isGolangJWT(t testing.TB, got, want string, pub ed25519.PublicKey) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "."), strings.Split(want, ".")
	if len(g) != 3 || len(w) != 3 || g[0] != w[0] {
		t.Fatalf("ticket differs from golang-jwt's:\n got  %s\n want %s", got, want)
	}
	enc := base64.RawURLEncoding
	gp, err1 := enc.DecodeString(g[1])
	wp, err2 := enc.DecodeString(w[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("claims segments: %v, %v", err1, err2)
	}
	escaped, err := compactjson.Append(nil, gp, true)
	if err != nil || string(escaped) != string(wp) {
		t.Fatalf("claims differ from golang-jwt's beyond HTML escapes (%v):\n got  %s\n want %s", err, gp, wp)
	}
	if string(escaped) == string(gp) {
		t.Fatalf("claims without a character to escape differ from golang-jwt's:\n got  %s\n want %s", got, want)
	}
	sig, err := enc.DecodeString(g[2])
	if err != nil || !ed25519.Verify(pub, []byte(g[0]+"."+g[1]), sig) {
		t.Fatalf("the ticket's signature does not verify (%v)", err)
	}
}

func edIssuer(t testing.TB) (*token.Issuer, *token.Key, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(key, "https://broker.example", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return iss.WithClock(func() time.Time { return time.Unix(1_800_000_000, 0) }), key, priv
}

// TestMintIsGolangJWT: an Ed25519 signature is deterministic, so the ticket
// the issuer builds itself must equal golang-jwt's exactly, for plain and
// awkward claims alike, apart from HTML escapes in metadata (isGolangJWT).
func TestMintIsGolangJWT(t *testing.T) {
	iss, key, priv := edIssuer(t)
	for _, tk := range []token.Ticket{
		{Org: "acme", Agent: "bot", Channel: "webrtc", Identity: "user-1"},
		{Org: "acme", Agent: "bot", Channel: "chat", Identity: `a "quoted" \ <b>&amp; é 日本 \u2028 ` + "\u2028\u2029\x7f\x01\t\n",
			Metadata: json.RawMessage(`{"a":"<script>&","b":[1,2.5,{"c":null}],"d":"\u2028"}`), Origin: "https://demo.example:8443"},
		{Org: "o", Agent: "a", Channel: "webrtc", Identity: "x", Metadata: json.RawMessage(`{ "spaced" : true }`),
			JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		{Org: "o", Agent: "a", Channel: "webrtc", Identity: "bad utf-8 \xff\xfe"},
		// One character that needs escaping at a time.
		{Org: "a<b", Agent: "c>d", Channel: "webrtc", Identity: "e&f", Origin: "g\x7fh"},
		{Org: "a\"b", Agent: `c\d`, Channel: "webrtc", Identity: "e\u2028f", Origin: "g\x00h"},
		{Org: "é", Agent: "日本", Channel: "webrtc", Identity: "\xc3", Origin: "\u2029"},
	} {
		got, claims, err := iss.Mint(tk)
		if err != nil {
			t.Fatal(err)
		}
		want, err := golangJWT(t, jwt.SigningMethodEdDSA, key.ID(), priv, claims)
		if err != nil {
			t.Fatal(err)
		}
		isGolangJWT(t, got, want, priv.Public().(ed25519.PublicKey))
	}
}

// TestMintES256: an ES256 signature is random; the header and claims
// segments must still be golang-jwt's, and the ticket must verify.
func TestMintES256(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := token.NewKey(priv)
	iss, _ := token.NewIssuer(key, "https://broker.example", time.Minute)
	got, claims, err := iss.Mint(token.Ticket{Org: "acme", Agent: "bot", Channel: "webrtc", Identity: "u<1>"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := golangJWT(t, jwt.SigningMethodES256, key.ID(), priv, claims)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := got[:strings.LastIndexByte(got, '.')], want[:strings.LastIndexByte(want, '.')]; g != w {
		t.Fatalf("signing input differs:\n got  %s\n want %s", g, w)
	}
	v, _ := token.NewVerifier("https://broker.example", []*token.Key{key}, nil, token.DefaultLeeway)
	if _, err := v.Verify(got); err != nil {
		t.Fatalf("ES256 ticket does not verify: %v", err)
	}
}

// FuzzMintIsGolangJWT: for any claims, the issuer's own encoding is
// golang-jwt's (that is, json.Marshal's), and it fails exactly when that
// fails (metadata that is not JSON).
func FuzzMintIsGolangJWT(f *testing.F) {
	f.Add("acme", "bot", "user-1", "", "")
	f.Add("a\"b", "<x>", "\u2028\xff", "https://a.example", `{"k":"<&>"}`)
	f.Add("o", "a", "i", "", `{"a": [1, 2]}`)
	f.Add("o", "a", "i", "", `not json`)
	iss, key, priv := edIssuer(f)
	f.Fuzz(func(t *testing.T, org, agent, identity, origin, metadata string) {
		tk := token.Ticket{Org: org, Agent: agent, Channel: "webrtc", Identity: identity, Origin: origin}
		if metadata != "" {
			tk.Metadata = json.RawMessage(metadata)
		}
		got, claims, err := iss.Mint(tk)
		md := tk.Metadata
		if len(md) == 0 {
			md = json.RawMessage("{}")
		}
		ref := &token.Claims{Issuer: "https://broker.example", Audience: token.Audience, Subject: identity,
			IssuedAt: 1_800_000_000, NotBefore: 1_800_000_000, ExpiresAt: 1_800_000_060,
			Org: org, Agent: agent, Channel: "webrtc", Metadata: md, Origin: origin}
		if claims != nil {
			ref.ID = claims.ID
		}
		want, werr := golangJWT(t, jwt.SigningMethodEdDSA, key.ID(), priv, ref)
		if (err != nil) != (werr != nil) {
			t.Fatalf("Mint error %v, golang-jwt error %v", err, werr)
		}
		if err == nil {
			isGolangJWT(t, got, want, priv.Public().(ed25519.PublicKey))
		}
	})
}
