package token_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/pkg/token"
)

func issuer(t testing.TB, k *token.Key) *token.Issuer {
	t.Helper()
	is, err := token.NewIssuer(k, iss, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return is.WithClock(fixed(t0))
}

// TestCheckUnsigned: a minted ticket passes with its own claims and the
// record its issuer made, on a verifier of the same key parsed again (as
// another replica reads the key file), for both algorithms.
func TestCheckUnsigned(t *testing.T) {
	for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			k := mustKey(t, alg)
			is := issuer(t, k)
			s, want, err := is.Mint(ticket)
			if err != nil {
				t.Fatal(err)
			}
			rec := is.Record(s)
			if len(rec) != token.RecordSize {
				t.Fatalf("record of %d bytes", len(rec))
			}
			data, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			replica, err := token.ParsePEM(data)
			if err != nil {
				t.Fatal(err)
			}
			if r2 := issuer(t, replica).Record(s); r2 != rec {
				t.Fatal("a replica with the same key file makes another record")
			}
			got, rec2, err := verifier(t, t0, replica).CheckUnsigned(s)
			if err != nil {
				t.Fatal(err)
			}
			if rec2 != rec {
				t.Fatal("CheckUnsigned's record differs from the issuer's")
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("claims %+v, want %+v", got, want)
			}
			if other := issuer(t, mustKey(t, alg)).Record(s); other == rec {
				t.Fatal("another key makes the same record")
			}
		})
	}
}

// TestRecordCoversEveryByte: a ticket differing from the minted one in any
// byte, signature included, has another record.
func TestRecordCoversEveryByte(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	is := issuer(t, k)
	s, _, err := is.Mint(ticket)
	if err != nil {
		t.Fatal(err)
	}
	rec := is.Record(s)
	seen := map[string]bool{rec: true}
	for i := range len(s) {
		b := []byte(s)
		b[i] ^= 1
		r := is.Record(string(b))
		if seen[r] {
			t.Fatalf("changing byte %d leaves the record as it was", i)
		}
		seen[r] = true
	}
	if is.Record(s+"A") == rec || is.Record(s[:len(s)-1]) == rec {
		t.Fatal("a longer or shorter ticket has the same record")
	}
}

// TestRecordKeyIsDerived: the record is HMAC-SHA256 under a key derived
// from the private key, not under the private key itself, and not the
// ticket's plain hash: nothing a reader of the store or of the JWKS can
// compute.
func TestRecordKeyIsDerived(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	is := issuer(t, k)
	s, _, _ := is.Mint(ticket)
	rec := is.Record(s)
	seed := privOf(t, k).(ed25519.PrivateKey).Seed()
	sum := sha256.Sum256([]byte(s))
	for _, bad := range []string{hmacOf(seed, s), hmacOf(nil, s), string(sum[:])} {
		if bad == rec {
			t.Fatal("record made without the derived key")
		}
	}
}

// TestCheckUnsignedRefuses: everything Verify refuses before its signature
// check, CheckUnsigned refuses too, with the same class of error; a header
// that is not the verifier's own, or of a key without a private part, is
// ErrNoRecord.
func TestCheckUnsignedRefuses(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	is := issuer(t, k)
	s, _, _ := is.Mint(ticket)
	parts := strings.Split(s, ".")
	other := mustKey(t, token.EdDSA)
	os, _, _ := issuer(t, other).Mint(ticket)
	pubOnly := verifier(t, t0, k.Public())
	if _, _, err := pubOnly.CheckUnsigned(s); !errors.Is(err, token.ErrNoRecord) {
		t.Fatalf("verification-only key: %v, want ErrNoRecord", err)
	}
	v := verifier(t, t0, k)
	enc := base64.RawURLEncoding
	cases := []struct {
		name string
		s    string
		want error
	}{
		{"another key's ticket", os, token.ErrNoRecord},
		{"header re-encoded", enc.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+k.ID()+`","typ":"vst+jwt"} `)) + "." + parts[1] + "." + parts[2], token.ErrNoRecord},
		{"alg none header", enc.EncodeToString([]byte(`{"alg":"none","kid":"`+k.ID()+`","typ":"vst+jwt"}`)) + "." + parts[1] + ".", token.ErrNoRecord},
		{"two segments", parts[0] + "." + parts[1], token.ErrInvalid},
		{"four segments", s + ".x", token.ErrInvalid},
		{"no dot", parts[0], token.ErrInvalid},
		{"empty", "", token.ErrInvalid},
		{"too long", strings.Repeat("a", token.MaxLength+1), token.ErrInvalid},
		{"claims not base64", parts[0] + ".!!." + parts[2], token.ErrInvalid},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!", token.ErrInvalid},
		{"claims not JSON", parts[0] + "." + enc.EncodeToString([]byte("{")) + "." + parts[2], token.ErrInvalid},
		{"wrong iss", parts[0] + "." + payload(t, s, "iss", "https://evil.example") + "." + parts[2], token.ErrInvalid},
		{"wrong aud", parts[0] + "." + payload(t, s, "aud", "other") + "." + parts[2], token.ErrInvalid},
		{"no org", parts[0] + "." + payload(t, s, "org", "") + "." + parts[2], token.ErrInvalid},
		{"metadata an array", parts[0] + "." + payload(t, s, "metadata", []int{}) + "." + parts[2], token.ErrInvalid},
		{"no exp", parts[0] + "." + payload(t, s, "exp", nil) + "." + parts[2], token.ErrInvalid},
		{"iat in the future", parts[0] + "." + payload(t, s, "iat", t0.Add(time.Hour).Unix()) + "." + parts[2], token.ErrInvalid},
		{"expired", parts[0] + "." + payload(t, s, "exp", t0.Add(-time.Hour).Unix()) + "." + parts[2], token.ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, rec, err := v.CheckUnsigned(tc.s)
			if !errors.Is(err, tc.want) || c != nil || rec != "" {
				t.Fatalf("got %v, %q, %v; want %v", c, rec, err, tc.want)
			}
		})
	}
	// Past exp plus leeway, the genuine ticket is expired for both.
	late := verifier(t, t0.Add(time.Minute+token.DefaultLeeway+time.Second), k)
	if _, _, err := late.CheckUnsigned(s); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("late: %v", err)
	}
}

// TestCheckUnsignedSkipsOnlyTheSignature: a ticket whose signature is
// garbage passes CheckUnsigned (that is its point), but its record is not
// the genuine ticket's, so no store holding the genuine record matches it.
func TestCheckUnsignedSkipsOnlyTheSignature(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	is := issuer(t, k)
	s, _, _ := is.Mint(ticket)
	parts := strings.Split(s, ".")
	sig := make([]byte, ed25519.SignatureSize)
	_, _ = rand.Read(sig)
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	v := verifier(t, t0, k)
	_, rec, err := v.CheckUnsigned(forged)
	if err != nil {
		t.Fatal(err)
	}
	if rec == is.Record(s) {
		t.Fatal("a forged signature has the genuine record")
	}
	if _, err := v.Verify(forged); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("Verify: %v", err)
	}
}

func hmacOf(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return string(m.Sum(nil))
}

// payload returns s's claims segment with claim set to v (removed for nil).
func payload(t testing.TB, s, claim string, v any) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, claim)
	} else {
		m[claim] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(out)
}

func BenchmarkRecord(b *testing.B) {
	k := mustKey(b, token.EdDSA)
	is := issuer(b, k)
	s, _, _ := is.Mint(ticket)
	b.ReportAllocs()
	for b.Loop() {
		_ = is.Record(s)
	}
}

func BenchmarkCheckUnsigned(b *testing.B) {
	k := mustKey(b, token.EdDSA)
	s, _, _ := issuer(b, k).Mint(ticket)
	v := verifier(b, t0, k)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := v.CheckUnsigned(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := mustKey(b, token.EdDSA)
	s, _, _ := issuer(b, k).Mint(ticket)
	v := verifier(b, t0, k)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(s); err != nil {
			b.Fatal(err)
		}
	}
}
