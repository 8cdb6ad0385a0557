package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/pkg/token"
)

// FuzzVerify feeds arbitrary strings to the verifier. Properties: it never
// panics; every error is ErrInvalid or ErrExpired; nothing but an untouched
// genuine ticket verifies.
func FuzzVerify(f *testing.F) {
	k, _ := token.GenerateKey(token.EdDSA)
	is, _ := token.NewIssuer(k, iss, time.Minute)
	good, _, _ := is.WithClock(fixed(t0)).Mint(ticket)
	parts := strings.Split(good, ".")
	// Seeds: the genuine ticket, its pieces rearranged, classic attacks.
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6InZzdCtqd3QifQ.e30.x")
	f.Add("...")
	f.Add("")
	f.Add(strings.Repeat("A", 100) + "." + parts[1] + "." + parts[2])
	v, _ := token.NewVerifier(iss, []*token.Key{k}, fixed(t0), token.DefaultLeeway)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := v.Verify(s)
		if err != nil {
			if !errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if s != good {
			// EdDSA signatures are not malleable and the header and payload
			// are signed, so only the exact genuine string may pass... except
			// for base64 encodings that decode to the same bytes, which the
			// strict decoder refuses.
			t.Fatalf("a string other than the genuine ticket verified: %q", s)
		}
		if c.Org != ticket.Org {
			t.Fatalf("claims %+v", c)
		}
	})
}
