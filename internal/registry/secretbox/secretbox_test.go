package secretbox_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
)

func newKey(t testing.TB) []byte {
	b := make([]byte, secretbox.KeySize)
	rand.Read(b)
	return b
}

func TestSealOpen(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	old, err := secretbox.New(k1)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("livekit-secret-" + strings.Repeat("x", 30))
	sealed, err := old.Seal(secret, []byte("org:acme"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "livekit-secret") || !strings.HasPrefix(sealed, "v1:"+old.ID()+":") {
		t.Fatalf("sealed = %s", sealed)
	}
	if again, _ := old.Seal(secret, []byte("org:acme")); again == sealed {
		t.Fatal("two seals of one secret are equal: the nonce is not fresh")
	}
	if got, err := old.Open(sealed, []byte("org:acme")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// Bound to its org.
	if _, err := old.Open(sealed, []byte("org:globex")); !errors.Is(err, secretbox.ErrCorrupt) {
		t.Fatalf("opened under another org: %v", err)
	}
	// Rotation: a keyring whose first key is new still opens old values
	// and seals with the new key.
	rotated, err := secretbox.New(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, []byte("org:acme")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("rotated open = %q, %v", got, err)
	}
	if id, _ := secretbox.KeyID(sealed); id != old.ID() || rotated.ID() == old.ID() || !rotated.Has(old.ID()) {
		t.Fatal("key ids")
	}
	// Without the old key.
	fresh, _ := secretbox.New(k2)
	if _, err := fresh.Open(sealed, []byte("org:acme")); !errors.Is(err, secretbox.ErrUnknownKey) {
		t.Fatalf("open without its key: %v", err)
	}
	// Tampering.
	body := []byte(sealed)
	body[len(body)-3] ^= 1
	if _, err := old.Open(string(body), []byte("org:acme")); !errors.Is(err, secretbox.ErrCorrupt) {
		t.Fatalf("tampered value opened: %v", err)
	}
}

func TestParseKeyFile(t *testing.T) {
	k := newKey(t)
	std := base64.StdEncoding.EncodeToString(k)
	good := []string{std, std + "\n", "# rotation\n" + std + "\n\n" + base64.RawURLEncoding.EncodeToString(newKey(t)) + "\n"}
	for _, g := range good {
		if _, err := secretbox.ParseKeyFile([]byte(g)); err != nil {
			t.Fatalf("%q: %v", g, err)
		}
	}
	short := base64.StdEncoding.EncodeToString(k[:16])
	for name, bad := range map[string]string{
		"empty": "", "comments only": "# nothing\n", "short": short, "not base64": "not base64 at all!",
		"twice": std + "\n" + std, "hex": strings.Repeat("ab", 32),
	} {
		_, err := secretbox.ParseKeyFile([]byte(bad))
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if strings.Contains(err.Error(), std) || strings.Contains(err.Error(), short) {
			t.Fatalf("%s: the key is in the error: %v", name, err)
		}
	}
}

// FuzzOpen: no input panics, and whatever opens was sealed by the key.
func FuzzOpen(f *testing.F) {
	k, _ := secretbox.New(bytes.Repeat([]byte{7}, 32))
	sealed, _ := k.Seal([]byte("secret"), []byte("ad"))
	f.Add(sealed)
	f.Add("v1:" + k.ID() + ":")
	f.Add("v1:0123456789abcdef:AAAA")
	f.Add("v2:x:y")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := k.Open(s, []byte("ad"))
		if err == nil && !bytes.Equal(got, []byte("secret")) && s != sealed {
			// Only values sealed by k open; the fuzzer cannot forge one.
			t.Fatalf("forged value opened: %q", s)
		}
		if _, err := secretbox.KeyID(s); err == nil && !strings.HasPrefix(s, "v1:") {
			t.Fatalf("KeyID accepted %q", s)
		}
	})
}

// FuzzParseKeyFile: no input panics; an accepted file yields a keyring
// that round-trips.
func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))))
	f.Add([]byte("# c\n\n"))
	f.Add([]byte("====\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := secretbox.ParseKeyFile(data)
		if err != nil {
			return
		}
		s, err := k.Seal([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Open(s, nil); err != nil || string(got) != "x" {
			t.Fatalf("round trip: %q %v", got, err)
		}
	})
}
