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
