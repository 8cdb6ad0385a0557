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
