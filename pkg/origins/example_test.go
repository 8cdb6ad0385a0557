package origins_test

import (
	"fmt"

	"github.com/voicebroker/voicebroker/pkg/origins"
)

func ExampleMatcher() {
	m, err := origins.NewMatcher("https://demo.mysite.com", "https://*.mysite.com", "http://localhost:*")
	if err != nil {
		panic(err)
	}
	for _, o := range []string{
		"https://shop.mysite.com",
		"https://mysite.com",
		"http://localhost:5173",
		"http://localhost.evil.com",
		"null",
	} {
		_, ok := m.Allow(o)
		fmt.Println(o, ok)
	}
	// Output:
	// https://shop.mysite.com true
	// https://mysite.com false
	// http://localhost:5173 true
	// http://localhost.evil.com false
	// null false
}

// A wildcard stays within its registrable domain: the public suffix list
// makes s3.amazonaws.com a suffix, so each bucket below it is another
// owner's site. Bases that are public suffixes or IP-like are refused.
func ExampleParsePattern() {
	p, _ := origins.ParsePattern("https://*.amazonaws.com")
	for _, s := range []string{"https://console.amazonaws.com", "https://attacker.s3.amazonaws.com"} {
		o, _ := origins.ParseOrigin(s)
		fmt.Println(s, p.Match(o))
	}
	for _, s := range []string{"https://*.github.io", "http://*.0.1:*"} {
		_, err := origins.ParsePattern(s)
		fmt.Println(s, err != nil)
	}
	// Output:
	// https://console.amazonaws.com true
	// https://attacker.s3.amazonaws.com false
	// https://*.github.io true
	// http://*.0.1:* true
}
