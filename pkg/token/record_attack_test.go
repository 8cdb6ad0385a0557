package token_test

import (
	"errors"
	"testing"

	"github.com/voicebroker/voicebroker/pkg/token"
)

// TestLineBreakIsNotASpelling: the base64 decoder skips CR and LF even in
// strict mode; a ticket with one anywhere is refused by Verify and by
// CheckUnsigned, so a genuine ticket has one spelling only.
func TestLineBreakIsNotASpelling(t *testing.T) {
	for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
		k := mustKey(t, alg)
		s, _, err := issuer(t, k).Mint(ticket)
		if err != nil {
			t.Fatal(err)
		}
		v := verifier(t, t0, k)
		if _, err := v.Verify(s); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{s + "\n", s + "\r\n", s[:20] + "\n" + s[20:], s[:len(s)-4] + "\r" + s[len(s)-4:], s + " ", s + "\t"} {
			if _, err := v.Verify(bad); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("%s: Verify(%q) = %v, want ErrInvalid", alg, bad, err)
			}
			if _, _, err := v.CheckUnsigned(bad); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("%s: CheckUnsigned(%q) = %v, want ErrInvalid", alg, bad, err)
			}
		}
	}
}

// TestRecordAfterRotation: a ticket of a key taken out of the verifier is
// refused by both checks; of a key kept as public only, CheckUnsigned has
// no record key (ErrNoRecord) and Verify accepts it.
func TestRecordAfterRotation(t *testing.T) {
	old, cur := mustKey(t, token.EdDSA), mustKey(t, token.ES256)
	s, _, err := issuer(t, old).Mint(ticket)
	if err != nil {
		t.Fatal(err)
	}
	gone := verifier(t, t0, cur)
	if _, _, err := gone.CheckUnsigned(s); !errors.Is(err, token.ErrNoRecord) {
		t.Fatalf("removed key: CheckUnsigned = %v", err)
	}
	if _, err := gone.Verify(s); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("removed key: Verify = %v", err)
	}
	pub := verifier(t, t0, cur, old.Public())
	if _, _, err := pub.CheckUnsigned(s); !errors.Is(err, token.ErrNoRecord) {
		t.Fatalf("public-only key: CheckUnsigned = %v", err)
	}
	if _, err := pub.Verify(s); err != nil {
		t.Fatalf("public-only key: Verify = %v", err)
	}
}
