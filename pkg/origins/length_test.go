package origins_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

// name builds a DNS name of exactly n characters from labels of at most
// label characters, ending in ".com".
func name(n, label int) string {
	var parts []string
	left := n - len(".com")
	for left > 0 {
		l := min(label, left)
		if left-l == 1 { // a one-character remainder would need an empty label
			l--
		}
		parts = append(parts, strings.Repeat("a", l))
		left -= l + 1
	}
	return strings.Join(parts, ".") + ".com"
}

// TestHostLength: a DNS name is at most 253 characters (in punycode,
// without a trailing dot) and each label at most 63: no browser can be on
// an origin with a longer host, so ParseOrigin refuses it, and patterns
// too; a wildcard needs room for at least one label below its domain.
func TestHostLength(t *testing.T) {
	for _, n := range []int{253, 252, 200} {
		if h := name(n, 63); len(h) != n {
			t.Fatalf("name(%d) has %d characters", n, len(h))
		}
	}
	l63, l64 := strings.Repeat("b", 63), strings.Repeat("b", 64)
	long := []string{
		name(254, 63),
		name(300, 63),
		name(254, 1),                         // many one-character labels
		l64 + ".com",                         // one label too long
		"a." + l64 + ".com",                  // in the middle
		strings.Repeat("ü", 60) + ".example", // 63+ in punycode
		strings.Repeat("ü", 10) + "." + name(245, 63), // Unicode that grows past 253
	}
	for _, h := range long {
		for _, scheme := range []string{"https://", "http://"} {
			for _, port := range []string{"", ":8443"} {
				if o, err := origins.ParseOrigin(scheme + h + port); !errors.Is(err, origins.ErrOrigin) {
					t.Errorf("origin with a %d-character host accepted as %q (%v)", len(h), o.Host, err)
				}
				if _, err := origins.ParsePattern(scheme + h + port); !errors.Is(err, origins.ErrPattern) {
					t.Errorf("pattern with a %d-character host accepted", len(h))
				}
				if _, ok := (&origins.Matcher{}).Allow(scheme + h + port); ok {
					t.Error("the zero Matcher allowed something")
				}
			}
		}
	}
	m, err := origins.NewMatcher("https://*.com.example.org", "http://localhost:*")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Allow("https://" + strings.TrimSuffix(name(254, 63), ".com") + ".com.example.org"); ok {
		t.Error("a wildcard admitted an over-long host")
	}

	// The limits themselves are fine.
	for _, h := range []string{name(253, 63), name(253, 1), l63 + ".com", "a." + l63 + "." + l63 + ".com"} {
		o, err := origins.ParseOrigin("https://" + h)
		if err != nil || o.Host != h {
			t.Errorf("origin with a %d-character host refused: %v", len(h), err)
		}
		if _, err := origins.ParsePattern("https://" + h); err != nil {
			t.Errorf("pattern with a %d-character host refused: %v", len(h), err)
		}
	}

	// A wildcard's domain leaves room for "x." below it.
	if _, err := origins.ParsePattern("https://*." + name(251, 63)); err != nil {
		t.Errorf("wildcard over a 251-character domain refused: %v", err)
	}
	for _, n := range []int{252, 253} {
		if _, err := origins.ParsePattern("https://*." + name(n, 63)); !errors.Is(err, origins.ErrPattern) {
			t.Errorf("wildcard over a %d-character domain accepted", n)
		}
	}
	m, err = origins.NewMatcher("https://*." + name(251, 63))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Allow("https://x." + name(251, 63)); !ok {
		t.Error("a 253-character host below a 251-character wildcard domain refused")
	}
}
