package origins_test

import (
	"errors"
	"testing"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

var patterns = []string{
	"https://demo.mysite.com",
	"https://*.mysite.com",
	"http://localhost:*",
	"https://app.example.org:8443",
	"https://bücher.example",
	"http://[::1]:3000",
}

func TestMatcher(t *testing.T) {
	m, err := origins.NewMatcher(patterns...)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{
		"https://demo.mysite.com",
		"https://demo.mysite.com:443",
		"https://DEMO.MySite.com",
		"https://a.mysite.com",
		"https://a.b.c.mysite.com",
		"https://x-y.mysite.com",
		"http://localhost",
		"http://localhost:5173",
		"http://localhost:80",
		"https://app.example.org:8443",
		"https://xn--bcher-kva.example",
		"https://bücher.example",
		"http://[::1]:3000",
		"http://[0:0:0:0:0:0:0:1]:3000",
	}
	for _, o := range allowed {
		if _, ok := m.Allow(o); !ok {
			t.Errorf("refused %q", o)
		}
	}
	// Published bypasses of CORS allowlists, and their relatives.
	refused := []string{
		"",                                    // missing
		"null",                                // sandboxed iframes, file://, redirects
		"NULL",                                //
		"https://mysite.com",                  // apex under *.mysite.com
		"https://evilmysite.com",              // shared suffix without a dot
		"https://mysite.com.evil.com",         // pattern as a prefix
		"https://demo.mysite.com.evil.com",    // exact as a prefix
		"https://evil.com/demo.mysite.com",    // pattern in the path
		"https://evil.com?demo.mysite.com",    // in the query
		"https://evil.com#.mysite.com",        // in the fragment
		"https://demo.mysite.com@evil.com",    // userinfo trick
		"https://evil.com@demo.mysite.com",    // userinfo before the host
		"https://demo.mysite.com/",            // a path, even "/"
		"https://demo.mysite.com/path",        //
		"https://demo.mysite.com.",            // trailing dot
		"https://a.mysite.com.",               //
		"http://demo.mysite.com",              // scheme downgrade
		"wss://demo.mysite.com",               // other scheme
		"https://demo.mysite.com:444",         // other port
		"https://demo.mysite.com:0443",        // leading-zero port
		"https://demo.mysite.com:",            // empty port
		"https://demo.mysite.com:99999",       // port out of range
		" https://demo.mysite.com",            // whitespace
		"https://demo.mysite.com ",            //
		"https://demo.mysite.com\t",           //
		"https://demo.mysite.com\n",           //
		"https://demo%2emysite.com",           // percent-encoding
		"https://demo.mysite.com%00.evil.com", // NUL smuggling
		"https://demo.mysite.com\\.evil.com",  // backslash
		"https://*.mysite.com",                // a wildcard sent as an origin
		"https://.mysite.com",                 // empty label
		"https://a..mysite.com",               // empty label inside
		"http://localhost.evil.com",           // localhost as a prefix
		"http://localhost.evil.com:5173",      //
		"http://evil-localhost:5173",          //
		"http://127.0.0.1:5173",               // not listed
		"https://localhost:5173",              // scheme differs from http://localhost:*
		"http://localhost:5173/",              //
		"https://app.example.org",             // pattern pins 8443
		"https://bucher.example",              // homoglyph without the umlaut
		"http://[::1]:3001",                   // other port on a pinned IPv6
		"http://[::1%25eth0]:3000",            // zone id
		"http://::1:3000",                     // unbracketed IPv6
		"demo.mysite.com",                     // no scheme
		"//demo.mysite.com",                   //
		"https:/demo.mysite.com",              //
		"https://demo.mysite.com\u3002",       // ideographic full stop folding to a trailing dot
		"https://a.mysite.com\uff0eevil.com",  // full-width dot: evil.com suffix after folding
	}
	if len(refused) < 40 {
		t.Fatalf("only %d adversarial cases", len(refused))
	}
	for _, o := range refused {
		if _, ok := m.Allow(o); ok {
			t.Errorf("allowed %q", o)
		}
	}
}

func TestCanonicalOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Demo.MySite.com:443": "https://demo.mysite.com",
		"http://localhost:80":         "http://localhost",
		"http://localhost:8080":       "http://localhost:8080",
		"https://bücher.example":      "https://xn--bcher-kva.example",
		"http://[0::1]:3000":          "http://[::1]:3000",
	} {
		o, err := origins.ParseOrigin(in)
		if err != nil || o.String() != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, o.String(), err, want)
		}
	}
}

func TestBadPatterns(t *testing.T) {
	for _, p := range []string{
		"*",
		"https://*",
		"https://*mysite.com",
		"https://*.com",
		"https://*.co.uk",
		"https://*.github.io",
		"https://a.*.com",
		"https://*.*.mysite.com",
		"*://mysite.com",
		"http*://mysite.com",
		"https://mysite.com/",
		"https://mysite.com/app",
		"https://mysite.com?x",
		"https://user@mysite.com",
		"https://mysite.com:99999",
		"https://mysite.com:abc",
		"https://mysite.com.",
		"ftp://mysite.com",
		"mysite.com",
		"https://*.localhost",
		"https://*.127.0.0.1",
		"https://my site.com",
		"null",
		"",
	} {
		if _, err := origins.ParsePattern(p); !errors.Is(err, origins.ErrPattern) {
			t.Errorf("pattern %q accepted (err %v)", p, err)
		}
	}
}

func TestPatternString(t *testing.T) {
	for in, want := range map[string]string{
		"HTTPS://*.MySite.com:443": "https://*.mysite.com",
		"http://localhost:*":       "http://localhost:*",
		"https://a.com:8443":       "https://a.com:8443",
	} {
		p, err := origins.ParsePattern(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePattern(%q).String() = %q, %v; want %q", in, p.String(), err, want)
		}
	}
}

// TestWildcardRegistrableDomain: a wildcard admits a host only within the
// base's registrable domain (public suffix list), never an IP literal in
// any spelling, and refuses bases that are public suffixes or IP-like.
func TestWildcardRegistrableDomain(t *testing.T) {
	cases := []struct {
		pattern string
		admit   []string
		refuse  []string
	}{
		{"https://*.amazonaws.com",
			[]string{"https://x.amazonaws.com", "https://a.b.amazonaws.com"},
			[]string{
				"https://bucket.s3.amazonaws.com",          // s3.amazonaws.com is a public suffix
				"https://attacker-bucket.s3.amazonaws.com", //
				"https://a.b.s3.amazonaws.com",             //
				"https://a.b.compute.amazonaws.com",        // *.compute.amazonaws.com rule
				"https://a.compute.amazonaws.com",          // a suffix itself by that rule
				"https://s3.amazonaws.com",                 // the suffix itself
				"https://amazonaws.com",                    // the apex
			}},
		{"https://*.mysite.com",
			[]string{"https://a.b.mysite.com", "https://A.B.MYSITE.COM", "https://x-1.mysite.com"},
			[]string{"https://mysite.com", "https://a.mysite.com.", "https://a.mysite.com:444", "http://a.mysite.com"}},
		{"https://*.mysite.co.uk",
			[]string{"https://a.mysite.co.uk"},
			[]string{"https://mysite.co.uk", "https://a.other.co.uk", "https://co.uk"}},
		{"https://*.acme.github.io",
			[]string{"https://pages.acme.github.io"},
			[]string{"https://evil.github.io", "https://acme.github.io"}},
		{"http://*.mysite.com:*",
			[]string{"http://a.mysite.com", "http://a.mysite.com:8080"},
			[]string{"http://127.0.0.1:8080", "http://[::1]:8080"}},
		{"https://*.xn--bcher-kva.example",
			[]string{"https://a.bücher.example", "https://a.xn--bcher-kva.example"},
			[]string{"https://a.bucher.example"}},
		{"https://*.internal-corp.test",
			[]string{"https://a.internal-corp.test"},
			[]string{"https://internal-corp.test"}},
	}
	for _, tc := range cases {
		m, err := origins.NewMatcher(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		for _, o := range tc.admit {
			if _, ok := m.Allow(o); !ok {
				t.Errorf("%s refused %s", tc.pattern, o)
			}
		}
		for _, o := range tc.refuse {
			if _, ok := m.Allow(o); ok {
				t.Errorf("%s admitted %s", tc.pattern, o)
			}
		}
	}
}

func TestWildcardBaseRefused(t *testing.T) {
	for _, p := range []string{
		"https://*.amazonaws.com.",        // trailing dot
		"https://*.s3.amazonaws.com",      // public suffix (private section)
		"https://*.S3.AmazonAWS.com",      // the same, uppercase
		"https://*.compute.amazonaws.com", // every child is a suffix: admits nothing
		"https://*.github.io",             //
		"https://*.GitHub.IO",             //
		"https://*.co.uk",                 //
		"https://*.CO.UK:*",               //
		"https://*.com",                   //
		"https://*.xn--p1ai",              // .рф in punycode
		"https://*.рф",                    // and in Unicode
		"https://*.blogspot.com",          //
		"http://*.0.1:*",                  // a browser reads x.0.1 as IPv4
		"http://*.0.0.1:*",                //
		"http://*.1:*",                    //
		"http://*.0x1:*",                  // hex last label
		"http://*.0x:*",                   //
		"http://*.127.0.0.1:*",            //
		"http://*.[::1]:*",                // bracketed IPv6
		"http://*.::1:*",                  //
		"https://*.１２７.０.０.１",             // full-width digits fold to an IP
		"https://*.localhost",             // one label
		"https://*.mysite.com/",           // path
		"https://*.*.mysite.com",          //
		"https://x*.mysite.com",           //
		"http://127.1:*",                  // a non-canonical IPv4 in an exact pattern
		"http://0x7f.0.0.1:*",             //
		"http://2130706433:*",             //
		"http://127.000.0.1:*",            //
	} {
		if _, err := origins.ParsePattern(p); !errors.Is(err, origins.ErrPattern) {
			t.Errorf("pattern %q accepted (err %v)", p, err)
		}
	}
}

// TestIPOriginSpellings: non-canonical IPv4 spellings, which browsers never
// send, are refused as origins; canonical IP literals match only exact
// patterns, never a wildcard.
func TestIPOriginSpellings(t *testing.T) {
	m, err := origins.NewMatcher("http://127.0.0.1:*", "http://[::1]:*", "http://*.mysite.com:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"http://127.0.0.1:3000", "http://[::1]:3000", "http://[0:0::1]"} {
		if _, ok := m.Allow(o); !ok {
			t.Errorf("refused %s", o)
		}
	}
	for _, o := range []string{
		"http://127.1:3000", "http://0x7f.0.0.1:3000", "http://0177.0.0.1:3000", "http://2130706433:3000",
		"http://127.0.0.01:3000", "http://127.0.1:3000", "http://0x7f000001", "http://1.mysite.com.0x",
		"http://a.mysite.com.1", "http://[::ffff:127.0.0.1]:3000", "http://[::1%25lo]:3000",
		"http://１２７.０.０.１:3000", "http://127。0。0。1:3000",
	} {
		if _, ok := m.Allow(o); ok {
			t.Errorf("allowed %s", o)
		}
	}
	for _, o := range []string{"http://127.1", "http://0x7f.0.0.1", "http://2130706433", "http://a.b.0x1f", "http://x.0x"} {
		if _, err := origins.ParseOrigin(o); !errors.Is(err, origins.ErrOrigin) {
			t.Errorf("ParseOrigin(%q) accepted a host a browser reads as IPv4", o)
		}
	}
	// A hand-built Origin with an IP host never matches a wildcard either.
	p, _ := origins.ParsePattern("http://*.0.0.1.mysite.com:*")
	for _, h := range []string{"127.0.0.1", "::1", "1.2.3.0x4"} {
		if p.Match(origins.Origin{Scheme: "http", Host: h, Port: 80}) {
			t.Errorf("wildcard matched IP host %q", h)
		}
	}
}
