package origins_test

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

// FuzzMatch: for any pattern and origin that both parse, a match implies
// that the schemes agree, the port agrees (unless the pattern has :*), and
// the host equals the pattern's host or ends with "." + its domain. A
// wildcard match further implies that the host is no IP literal and that
// its registrable domain (eTLD+1) is the base's. The canonical
// serialisations of an accepted origin and pattern parse back to
// themselves, and a parsed origin's host never ends in a number unless it
// is a dotted-decimal IPv4 address. Every accepted host is a resolvable
// DNS name or an IP address: at most 253 characters, labels at most 63
// (a wildcard's domain at most 251, leaving room for one label).
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
		{"https://*.amazonaws.com", "https://bucket.s3.amazonaws.com"}, // another owner's domain
		{"http://*.0.1:*", "http://127.0.0.1:3000"},                    // an IP-like base
		{"http://localhost:*", "http://127.1:3000"},                    // a short IPv4 spelling
		{"https://*.github.io", "https://evil.github.io"},              // a public suffix base
		{"https://*.a.compute.amazonaws.com", "https://x.a.compute.amazonaws.com"},
		{"https://*.mysite.com", "https://x.mysite.com.0x"},
		{"https://*." + strings.Repeat("a.", 125) + "com", "https://x." + strings.Repeat("a.", 125) + "com"}, // 253 characters
		{"https://" + strings.Repeat("a.", 125) + "co", "https://" + strings.Repeat("a.", 126) + "com"},      // 251 and 255
		{"https://" + strings.Repeat("b", 63) + ".com", "https://" + strings.Repeat("b", 64) + ".com"},
		{"https://" + strings.Repeat("ü", 30) + ".example", "https://" + strings.Repeat("ü", 60) + ".example"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		p, err := origins.ParsePattern(pattern)
		if err != nil {
			return
		}
		if host := hostOf(p.String()); len(host) > 253 { // a wildcard's "*." counts: its domain leaves room for a label
			t.Fatalf("pattern %q accepted with a %d-character host", pattern, len(host))
		}
		o, err := origins.ParseOrigin(origin)
		if err != nil {
			return
		}
		if len(o.Host) > 253 {
			t.Fatalf("%q accepted with a %d-character host", origin, len(o.Host))
		}
		for _, label := range strings.Split(o.Host, ".") {
			if len(label) > 63 && strings.IndexByte(o.Host, ':') < 0 {
				t.Fatalf("%q accepted with a %d-character label", origin, len(label))
			}
		}
		back, err := origins.ParseOrigin(o.String())
		if err != nil || back != o {
			t.Fatalf("%q canonicalises to %q which parses to %+v, %v", origin, o.String(), back, err)
		}
		if pback, err := origins.ParsePattern(p.String()); err != nil || pback != p {
			t.Fatalf("pattern %q canonicalises to %q which parses to %+v, %v", pattern, p.String(), pback, err)
		}
		addr, ipErr := netip.ParseAddr(o.Host)
		last := o.Host[strings.LastIndexByte(o.Host, '.')+1:]
		lower := strings.ToLower(last)
		hexNumber := strings.HasPrefix(lower, "0x") && strings.Trim(lower[2:], "0123456789abcdef") == ""
		if ipErr != nil && last != "" && (strings.Trim(last, "0123456789") == "" || hexNumber) {
			t.Fatalf("%q parsed with host %q, which a browser reads as IPv4", origin, o.Host)
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
			if strconv.Itoa(o.Port) != want {
				t.Fatalf("%q matched %q with another port", origin, ps)
			}
		}
		if domain, wild := strings.CutPrefix(host, "*."); wild {
			if !strings.HasSuffix(o.Host, "."+domain) || o.Host == domain {
				t.Fatalf("%q matched %q outside the domain", origin, ps)
			}
			if ipErr == nil {
				t.Fatalf("%q (IP %s) matched wildcard %q", origin, addr, ps)
			}
			hostSite, err1 := publicsuffix.EffectiveTLDPlusOne(o.Host)
			baseSite, err2 := publicsuffix.EffectiveTLDPlusOne(domain)
			if err1 != nil || err2 != nil || hostSite != baseSite {
				t.Fatalf("%q (site %q) matched %q (site %q) across registrable domains", origin, hostSite, ps, baseSite)
			}
		} else if o.Host != host {
			t.Fatalf("%q matched %q with another host", origin, ps)
		}
	})
}

// hostOf returns the host of a canonical pattern, a wildcard's with its
// "*.".
func hostOf(pattern string) string {
	_, rest, _ := strings.Cut(pattern, "://")
	if strings.HasPrefix(rest, "[") {
		return rest[:strings.IndexByte(rest, ']')+1]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		return rest[:i]
	}
	return rest
}
