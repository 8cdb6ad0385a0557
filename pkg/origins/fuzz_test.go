package origins_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

// FuzzMatch: for any pattern and origin that both parse, a match implies
// that the schemes agree, the port agrees (unless the pattern has :*), and
// the host equals the pattern's host or ends with "." + its domain. The
// canonical serialisation of an accepted origin parses back to itself.
func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"https://*.mysite.com", "https://a.mysite.com"},
		{"https://*.mysite.com", "https://evilmysite.com"},
		{"https://*.mysite.com", "https://mysite.com"},
		{"http://localhost:*", "http://localhost.evil.com:80"},
		{"https://demo.mysite.com", "https://demo.mysite.com:443"},
		{"https://bücher.example", "https://xn--bcher-kva.example"},
		{"http://[::1]:3000", "http://[::1]:3000"},
		{"https://*.mysite.com", "https://a.mysite.com\uff0eevil.com"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		p, err := origins.ParsePattern(pattern)
		if err != nil {
			return
		}
		o, err := origins.ParseOrigin(origin)
		if err != nil {
			return
		}
		back, err := origins.ParseOrigin(o.String())
		if err != nil || back != o {
			t.Fatalf("%q canonicalises to %q which parses to %+v, %v", origin, o.String(), back, err)
		}
		if !p.Match(o) {
			return
		}
		ps := p.String()
		scheme, rest, _ := strings.Cut(ps, "://")
		if o.Scheme != scheme {
			t.Fatalf("%q matched %q across schemes", origin, ps)
		}
		host, port := rest, ""
		if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.HasSuffix(rest, "]") {
			host, port = rest[:i], rest[i+1:]
		}
		host = strings.Trim(host, "[]")
		if port != "*" {
			want := "443"
			if scheme == "http" {
				want = "80"
			}
			if port != "" {
				want = port
			}
			if got := o.String(); !strings.HasSuffix(got, ":"+want) && !(port == "" && !strings.Contains(strings.TrimPrefix(got, scheme+"://"), ":")) {
				t.Fatalf("%q matched %q with another port", origin, ps)
			}
		}
		if domain, wild := strings.CutPrefix(host, "*."); wild {
			if !strings.HasSuffix(o.Host, "."+domain) || o.Host == domain {
				t.Fatalf("%q matched %q outside the domain", origin, ps)
			}
		} else if o.Host != host {
			t.Fatalf("%q matched %q with another host", origin, ps)
		}
	})
}
