// Package secretbox encrypts the secrets the tenant registry keeps in its
// database (per-org LiveKit API secrets) with AES-256-GCM.
//
// A sealed value is "v1:<key id>:<base64url(nonce || ciphertext)>". The key
// id (16 hex digits of the key's SHA-256) says which key sealed it, so keys
// can be rotated: a key file lists one or more keys, the first seals, all
// open. The caller binds each value to where it belongs (the org) as
// additional data, so a value copied to another row does not open.
package secretbox

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// MaxSealed bounds what Open parses.
const MaxSealed = 8 << 10

const version = "v1"

var (
	// ErrUnknownKey: the value was sealed with a key the keyring lacks.
	ErrUnknownKey = errors.New("sealed with a key that is not in BROKER_SECRETS_KEY_FILE")
	// ErrCorrupt: the value is not a sealed value, or it fails
	// authentication (changed, or bound to something else).
	ErrCorrupt = errors.New("not a valid sealed value")
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring holds the keys. It is safe for concurrent use.
type Keyring struct {
	keys []key
}

// New returns a keyring of raw 32-byte keys; the first seals.
func New(raw ...[]byte) (*Keyring, error) {
	if len(raw) == 0 {
		return nil, errors.New("no key")
	}
	k := &Keyring{}
	seen := map[string]bool{}
	for i, r := range raw {
		if len(r) != KeySize {
			return nil, fmt.Errorf("key %d: %d bytes, want %d", i+1, len(r), KeySize)
		}
		block, err := aes.NewCipher(r)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(r)
		id := hex.EncodeToString(sum[:8])
		if seen[id] {
			return nil, fmt.Errorf("key %d: listed twice", i+1)
		}
		seen[id] = true
		k.keys = append(k.keys, key{id: id, aead: aead})
	}
	return k, nil
}

// ParseKeyFile reads a key file: one base64 key of 32 bytes a line (the
// first seals; the others only open, for rotation), blank lines and lines
// starting with # ignored. Errors name the line, never its content.
func ParseKeyFile(data []byte) (*Keyring, error) {
	if len(data) > 64<<10 {
		return nil, errors.New("larger than 64 KiB")
	}
	var raw [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := decode(line)
		if err != nil || len(b) != KeySize {
			return nil, fmt.Errorf("line %d: not the base64 of %d bytes (make one with: openssl rand -base64 32)", n, KeySize)
		}
		raw = append(raw, b)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, errors.New("no key in the file (make one with: openssl rand -base64 32)")
	}
	return New(raw...)
}

func decode(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// LoadKeyFile reads the key file at path (BROKER_SECRETS_KEY_FILE).
func LoadKeyFile(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("BROKER_SECRETS_KEY_FILE: %w", err)
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("BROKER_SECRETS_KEY_FILE %s: %w", path, err)
	}
	return k, nil
}

// ID returns the id of the key that seals.
func (k *Keyring) ID() string { return k.keys[0].id }

// Has reports whether the keyring holds the key with that id.
func (k *Keyring) Has(id string) bool {
	for _, ky := range k.keys {
		if ky.id == id {
			return true
		}
	}
	return false
}

// Seal encrypts plaintext bound to ad with the first key.
func (k *Keyring) Seal(plaintext, ad []byte) (string, error) {
	ky := k.keys[0]
	nonce := make([]byte, ky.aead.NonceSize(), ky.aead.NonceSize()+len(plaintext)+ky.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := ky.aead.Seal(nonce, nonce, plaintext, ad)
	return version + ":" + ky.id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// KeyID returns the id of the key that sealed s.
func KeyID(s string) (string, error) {
	id, _, err := split(s)
	return id, err
}

func split(s string) (id string, body []byte, err error) {
	if len(s) > MaxSealed {
		return "", nil, ErrCorrupt
	}
	v, rest, ok := strings.Cut(s, ":")
	if !ok || v != version {
		return "", nil, ErrCorrupt
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok || len(id) != 16 {
		return "", nil, ErrCorrupt
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", nil, ErrCorrupt
	}
	body, err = base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, ErrCorrupt
	}
	return id, body, nil
}

// Open decrypts what Seal made with the same ad.
func (k *Keyring) Open(s string, ad []byte) ([]byte, error) {
	id, body, err := split(s)
	if err != nil {
		return nil, err
	}
	for _, ky := range k.keys {
		if ky.id != id {
			continue
		}
		if len(body) < ky.aead.NonceSize()+ky.aead.Overhead() {
			return nil, ErrCorrupt
		}
		n := ky.aead.NonceSize()
		out, err := ky.aead.Open(nil, body[:n], body[n:], ad)
		if err != nil {
			return nil, ErrCorrupt
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, id)
}
