package httpapi

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/pkg/origins"
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

// TestSetCORSHeaders: setCORS sets what Header.Set and Header.Add did:
// the origin, Vary: Origin added to any Vary already there (once per
// call), the exposed headers; and a later Add to one answer's Vary never
// shows in another's.
func TestSetCORSHeaders(t *testing.T) {
	o, err := origins.ParseOrigin("https://demo.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	old := func(h http.Header) {
		h.Set(echo.HeaderAccessControlAllowOrigin, o.String())
		h.Add(echo.HeaderVary, echo.HeaderOrigin)
		h.Set(echo.HeaderAccessControlExposeHeaders, "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id")
	}
	e := echo.New()
	for _, tc := range []struct {
		name  string
		pre   http.Header
		times int
	}{
		{"fresh", http.Header{}, 1},
		{"twice", http.Header{}, 2},
		{"a Vary already", http.Header{"Vary": {"Accept-Encoding"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pre.Clone()
			w := httptest.NewRecorder()
			for k, v := range tc.pre {
				w.Header()[k] = slices.Clone(v)
			}
			c := e.NewContext(httptest.NewRequest("POST", "/public/token", nil), w)
			for range tc.times {
				old(want)
				setCORS(c, o)
			}
			if got := w.Header(); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			w.Header().Add("Vary", "Cookie")
			w2 := httptest.NewRecorder()
			setCORS(e.NewContext(httptest.NewRequest("POST", "/public/token", nil), w2), o)
			if v := w2.Header().Values("Vary"); len(v) != 1 || v[0] != "Origin" {
				t.Fatalf("another answer's Vary: %q", v)
			}
		})
	}
}
