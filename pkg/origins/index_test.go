package origins_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

// scan is what Index replaces: every matcher asked in turn.
func scan(ms []*origins.Matcher, o origins.Origin) bool {
	for _, m := range ms {
		if m.MatchOrigin(o) {
			return true
		}
	}
	return false
}

// indexSeeds are pattern lists (one matcher per "|"-separated group,
// patterns split by ",") with an origin, covering each kind of pattern and
// the near misses around them.
var indexSeeds = [][2]string{
	{"https://*.mysite.com|https://demo.acme.example", "https://a.b.mysite.com"},
	{"https://*.mysite.com", "https://mysite.com"},
	{"https://*.mysite.com", "https://evilmysite.com"},
	{"https://*.mysite.com:8443", "https://a.mysite.com:443"},
	{"https://*.mysite.com:*", "https://a.mysite.com:8443"},
	{"http://localhost:*|https://x.example", "http://localhost:3000"},
	{"http://localhost:*", "https://localhost:3000"},
	{"http://[::1]:3000,https://*.example.com", "http://[::1]:3000"},
	{"https://*.amazonaws.com", "https://bucket.s3.amazonaws.com"},
	{"https://*.s3.amazonaws.com", "https://bucket.s3.amazonaws.com"},
	{"https://*.example.com|https://*.example.com|http://*.example.com", "http://a.example.com"},
	{"https://*.a.example.com|https://b.example.com", "https://x.a.example.com"},
	{"https://*.example.com", "https://1.2.3.example.com"},
	{"", "https://a.example.com"},
}

// The index answers exactly as the scan, for the seeds and whatever the
// fuzzer makes of them.
func FuzzIndexMatchesScan(f *testing.F) {
	for _, s := range indexSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, lists, origin string) {
		o, err := origins.ParseOrigin(origin)
		if err != nil {
			return
		}
		var ms []*origins.Matcher
		for _, group := range strings.Split(lists, "|") {
			var pats []string
			if group != "" {
				pats = strings.Split(group, ",")
			}
			m, err := origins.NewMatcher(pats...)
			if err != nil {
				return
			}
			ms = append(ms, m)
		}
		ms = append(ms, nil) // a nil matcher matches nothing, in both
		if got, want := origins.NewIndex(ms...).MatchOrigin(o), scan(ms, o); got != want {
			t.Fatalf("index %v, scan %v for %q against %q", got, want, origin, lists)
		}
	})
}

// A property test over a generated grid: every pattern of a family of
// hosts, ports and schemes, against every origin of the same family.
func TestIndexMatchesScanExhaustively(t *testing.T) {
	hosts := []string{"example.com", "a.example.com", "b.a.example.com", "s3.amazonaws.com", "x.s3.amazonaws.com", "localhost", "other.org"}
	ports := []string{"", ":8443", ":*"}
	var ms []*origins.Matcher
	var all []string
	for _, scheme := range []string{"http", "https"} {
		for _, h := range hosts {
			for _, p := range ports {
				for _, w := range []string{"", "*."} {
					pat := scheme + "://" + w + h + p
					if m, err := origins.NewMatcher(pat); err == nil {
						ms = append(ms, m)
						all = append(all, pat)
					}
				}
			}
		}
	}
	var ors []origins.Origin
	for _, scheme := range []string{"http", "https"} {
		for _, h := range append(hosts, "z.b.a.example.com", "evilexample.com", "127.0.0.1", "[::1]") {
			for _, p := range []string{"", ":8443", ":3000"} {
				o, err := origins.ParseOrigin(scheme + "://" + h + p)
				if err != nil {
					t.Fatal(err)
				}
				ors = append(ors, o)
			}
		}
	}
	// Each single matcher, and every prefix of the list.
	checked := 0
	for i := range ms {
		for _, set := range [][]*origins.Matcher{ms[i : i+1], ms[:i+1]} {
			x := origins.NewIndex(set...)
			for _, o := range ors {
				if got, want := x.MatchOrigin(o), scan(set, o); got != want {
					t.Fatalf("index %v, scan %v for %s against %d matchers ending with %s", got, want, o, len(set), all[i])
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
	var zero *origins.Index
	if zero.MatchOrigin(ors[0]) || origins.NewIndex().MatchOrigin(ors[0]) {
		t.Fatal("an empty index matches")
	}
}

// BenchmarkIndex compares the index with the scan at a platform's size:
// one matcher per agent, 50,000 agents (10,000 orgs of 5).
func BenchmarkIndex(b *testing.B) {
	var ms []*origins.Matcher
	for i := range 50000 {
		m, err := origins.NewMatcher(fmt.Sprintf("https://*.org-%d.example.com", i/5), fmt.Sprintf("https://app.org-%d.example.net", i/5))
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	o, _ := origins.ParseOrigin("https://nowhere.example.org") // the worst case: no match
	x := origins.NewIndex(ms...)
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			x.MatchOrigin(o)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			scan(ms, o)
		}
	})
}
