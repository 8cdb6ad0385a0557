// Package apikey generates, recognises and hashes voicebroker's API keys.
//
// A secret key is "sk_live_" or "sk_test_" followed by 43 base62 characters
// (256 random bits); a publishable key is the same with "pk_"; a platform
// admin key (the admin API's credential) is "ak_live_" and the same body.
// Only the SHA-256 of the whole key, written "sha256:<64 hex>", is ever
// stored.
package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// Kind says what a key may be used for.
type Kind string

// The kinds of key.
const (
	Secret      Kind = "sk"
	Publishable Kind = "pk"
	// Admin is a platform admin key: the whole tenant registry through the
	// admin API. It is always live (ak_live_); see ParseAdmin.
	Admin Kind = "ak"
)

// Env is the environment a key belongs to.
type Env string

// The environments of a key. Test keys are refused when the broker runs
// with BROKER_ENV=production.
const (
	Live Env = "live"
	Test Env = "test"
)

const (
	// BodyLength is the number of base62 characters a generated key carries:
	// 62^43 > 2^256.
	BodyLength = 43
	// MaxLength bounds what Parse accepts, so that hashing is bounded.
	MaxLength = 256
	// HashPrefix starts every stored hash.
	HashPrefix = "sha256:"
)

// ErrFormat is returned by Parse for a string that is not an API key.
var ErrFormat = errors.New("apikey: not an API key")

// New returns a fresh key of the kind and environment, from crypto/rand.
func New(kind Kind, env Env) (string, error) {
	body, err := rooms.RandomBase62(BodyLength)
	if err != nil {
		return "", err
	}
	return string(kind) + "_" + string(env) + "_" + body, nil
}

// Parse reports the kind and environment of key, or ErrFormat when it is not
// a well-formed key: a known prefix and at least 43 base62 characters.
func Parse(key string) (Kind, Env, error) {
	if len(key) > MaxLength || len(key) < len("sk_live_")+BodyLength {
		return "", "", ErrFormat
	}
	var kind Kind
	switch key[:3] {
	case "sk_":
		kind = Secret
	case "pk_":
		kind = Publishable
	default:
		return "", "", ErrFormat
	}
	var env Env
	switch key[3:8] {
	case "live_":
		env = Live
	case "test_":
		env = Test
	default:
		return "", "", ErrFormat
	}
	for i := 8; i < len(key); i++ {
		if strings.IndexByte(rooms.Base62, key[i]) < 0 {
			return "", "", ErrFormat
		}
	}
	return kind, env, nil
}

// AdminPrefix starts every platform admin key.
const AdminPrefix = "ak_live_"

// ParseAdmin returns ErrFormat unless key is a well-formed platform admin
// key: "ak_live_" and at least 43 base62 characters, at most MaxLength in
// all. Parse does not accept admin keys: they authenticate nowhere but the
// admin API.
func ParseAdmin(key string) error {
	if len(key) > MaxLength || len(key) < len(AdminPrefix)+BodyLength || !strings.HasPrefix(key, AdminPrefix) {
		return ErrFormat
	}
	for i := len(AdminPrefix); i < len(key); i++ {
		if strings.IndexByte(rooms.Base62, key[i]) < 0 {
			return ErrFormat
		}
	}
	return nil
}

// Looks reports whether s has the prefix of an API key (sk_ or pk_), so the
// caller knows to treat it as one and not try other credential kinds.
func Looks(s string) bool {
	return strings.HasPrefix(s, "sk_") || strings.HasPrefix(s, "pk_")
}

// Hash returns the stored form of key: "sha256:" and 64 lowercase hex digits.
func Hash(key string) string {
	var b [HashLen]byte
	return string(AppendHash(b[:0], key))
}

// HashLen is the length of Hash's result.
const HashLen = len(HashPrefix) + 2*sha256.Size

// AppendHash appends Hash(key) to dst: with dst on the caller's stack, a
// lookup by hash allocates nothing.
func AppendHash(dst []byte, key string) []byte {
	var sum [sha256.Size]byte
	var kb [MaxLength]byte
	if len(key) <= len(kb) {
		// A copy on the stack: []byte(key) of a key over 32 bytes would
		// be one on the heap.
		sum = sha256.Sum256(kb[:copy(kb[:], key)])
	} else {
		sum = sha256.Sum256([]byte(key))
	}
	dst = append(dst, HashPrefix...)
	return hex.AppendEncode(dst, sum[:])
}

// ValidHash reports whether h is in the stored form Hash produces.
func ValidHash(h string) bool {
	if len(h) != len(HashPrefix)+64 || !strings.HasPrefix(h, HashPrefix) {
		return false
	}
	for _, c := range h[len(HashPrefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
