package httpapi

import (
	"net/http/httptest"
	"regexp"
	"testing"
)

// TestGeneratedIdentity: a mint without an identity gets "user-" and 16
// base64url characters (96 random bits), a new one each time.
func TestGeneratedIdentity(t *testing.T) {
	shape := regexp.MustCompile(`^user-[A-Za-z0-9_-]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		id, err := identityOf(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(id) {
			t.Fatalf("identity %q", id)
		}
		if seen[id] {
			t.Fatalf("identity %q twice", id)
		}
		seen[id] = true
	}
}

// TestJSONContentType: the media type application/json in any case, with
// or without parameters, and a charset only of utf-8; one header only.
func TestJSONContentType(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"Application/JSON"}, true},
		{[]string{"application/json; charset=utf-8"}, true},
		{[]string{"application/json;charset=UTF-8"}, true},
		{[]string{"application/json ; charset=utf-8"}, true},
		{[]string{"application/json; charset=latin1"}, false},
		{[]string{"application/jsonx"}, false},
		{[]string{"application/json\x00"}, false},
		{[]string{"text/plain"}, false},
		{[]string{""}, false},
		{nil, false},
		{[]string{"application/json", "application/json"}, false},
	} {
		r := httptest.NewRequest("POST", "/token", nil)
		for _, v := range tc.values {
			r.Header.Add("Content-Type", v)
		}
		if got := jsonContentType(r); got != tc.want {
			t.Errorf("Content-Type %q: %v, want %v", tc.values, got, tc.want)
		}
	}
}
