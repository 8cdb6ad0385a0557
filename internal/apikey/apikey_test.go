package apikey_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

// TestAdminKeys: admin keys are ak_live_ and 43 base62 characters (256
// bits); ParseAdmin accepts exactly that shape, and Parse (sk_, pk_)
// never takes one for a secret or publishable key.
func TestAdminKeys(t *testing.T) {
	k, err := apikey.New(apikey.Admin, apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k, "ak_live_") || len(k) != len("ak_live_")+apikey.BodyLength {
		t.Fatalf("key %q", k[:8])
	}
	if err := apikey.ParseAdmin(k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := apikey.Parse(k); err == nil {
		t.Fatal("Parse takes an admin key")
	}
	other, _ := apikey.New(apikey.Admin, apikey.Live)
	if other == k {
		t.Fatal("two keys alike")
	}
	for _, bad := range []string{
		"", "ak_live_", "ak_live_" + strings.Repeat("a", 42), "ak_test_" + k[8:], "AK_live_" + k[8:], "sk_live_" + k[8:],
		k[:20] + "_" + k[21:], k + "-", k + " ", "ak_live_" + strings.Repeat("a", apikey.MaxLength), "ak_live_" + strings.Repeat("é", 43),
	} {
		if apikey.ParseAdmin(bad) == nil {
			t.Errorf("ParseAdmin accepts %q", bad)
		}
	}
}

// FuzzParseAdmin: whatever ParseAdmin accepts is ak_live_ and base62,
// within MaxLength.
func FuzzParseAdmin(f *testing.F) {
	k, _ := apikey.New(apikey.Admin, apikey.Live)
	for _, s := range []string{k, "ak_live_", "ak_test_" + k[8:], k + "é", "sk_live_" + k[8:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if apikey.ParseAdmin(s) != nil {
			return
		}
		if !strings.HasPrefix(s, "ak_live_") || len(s) < 8+apikey.BodyLength || len(s) > apikey.MaxLength {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range s[8:] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

// TestHash: Hash is "sha256:" and the lowercase hex SHA-256 of the key,
// for keys short and long (the stack copy ends at MaxLength), and
// AppendHash appends the same after what dst holds.
func TestHash(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, 51, apikey.MaxLength - 1, apikey.MaxLength, apikey.MaxLength + 1, 4096} {
		key := strings.Repeat("k", n)
		sum := sha256.Sum256([]byte(key))
		want := "sha256:" + hex.EncodeToString(sum[:])
		if got := apikey.Hash(key); got != want {
			t.Fatalf("Hash of %d bytes = %q, want %q", n, got, want)
		}
		if got := string(apikey.AppendHash([]byte("x:"), key)); got != "x:"+want {
			t.Fatalf("AppendHash of %d bytes = %q", n, got)
		}
		if !apikey.ValidHash(want) || len(want) != apikey.HashLen {
			t.Fatalf("%q is not a valid hash of length HashLen", want)
		}
	}
}
