package origins

import "strings"

// Index answers whether any of many Matchers allows an origin, in a time
// that does not grow with their number: the preflight of a broker with
// thousands of agents in public mode asks it of every agent at once.
//
// Exact origins are one map lookup; patterns for any port of one host are
// another; wildcard patterns are filed under their base domain, and an
// origin looks up each domain it ends with (at most one per label of its
// host, bounded by the 253-character limit), then checks the few patterns
// there with Pattern.Match, so the answer is always exactly what a scan of
// every Matcher would give. An Index is built once and is then safe for
// concurrent use; the zero Index matches nothing.
type Index struct {
	exact   map[Origin]struct{}
	anyPort map[schemeHost]struct{}
	// wild holds the distinct wildcard patterns by their base domain (the
	// host below the "*.").
	wild map[string][]Pattern
}

type schemeHost struct{ scheme, host string }

// NewIndex indexes the patterns of every matcher (nil ones are skipped).
func NewIndex(ms ...*Matcher) *Index {
	x := &Index{exact: make(map[Origin]struct{}), anyPort: make(map[schemeHost]struct{}), wild: make(map[string][]Pattern)}
	for _, m := range ms {
		x.Add(m)
	}
	return x
}

// Add indexes m's patterns too. It must not be called once the Index is
// in use.
func (x *Index) Add(m *Matcher) {
	if m == nil {
		return
	}
	for o := range m.exact {
		x.exact[o] = struct{}{}
	}
	for _, p := range m.patterns {
		switch {
		case p.wildcard:
			ps := x.wild[p.host]
			dup := false
			for _, q := range ps {
				dup = dup || q == p
			}
			if !dup {
				x.wild[p.host] = append(ps, p)
			}
		case p.port == 0:
			x.anyPort[schemeHost{p.scheme, p.host}] = struct{}{}
		default:
			// NewMatcher files an exact host and port under exact.
			x.exact[Origin{Scheme: p.scheme, Host: p.host, Port: p.port}] = struct{}{}
		}
	}
}

// MatchOrigin reports whether any indexed matcher allows o.
func (x *Index) MatchOrigin(o Origin) bool {
	if x == nil {
		return false
	}
	if _, ok := x.exact[o]; ok {
		return true
	}
	if _, ok := x.anyPort[schemeHost{o.Scheme, o.Host}]; ok {
		return true
	}
	if len(x.wild) == 0 {
		return false
	}
	// A wildcard admits whole labels below its base: try the base of each
	// proper suffix of the host that starts after a dot.
	for h := o.Host; ; {
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return false
		}
		h = h[i+1:]
		for _, p := range x.wild[h] {
			if p.Match(o) {
				return true
			}
		}
	}
}
