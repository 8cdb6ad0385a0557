package httpapi

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzCredential: credential extraction never panics, and whatever it
// returns is printable ASCII without spaces, at most MaxCredentialLength,
// and is exactly the header's bearer part (when the header is well formed)
// or else the api_key parameter.
func FuzzCredential(f *testing.F) {
	f.Add("Bearer sk_live_abc", "")
	f.Add("bearer x", "y")
	f.Add("Basic abc", "sk_live_q")
	f.Add("Bearer ", "")
	f.Add("Bearer a b", "c")
	f.Add("Bearer\tx", "")
	f.Add("", "k%00ey")
	f.Add("BEARER "+strings.Repeat("a", 9000), "")
	f.Fuzz(func(t *testing.T, header, query string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: "api_key=" + url.QueryEscape(query)}}
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		cred, err := credential(r)
		if err != nil {
			code := classify(err).Code
			if code != CodeMissingAuthHeader && code != CodeInvalidAuthHeader {
				t.Fatalf("unexpected code %s", code)
			}
			return
		}
		if cred == "" || len(cred) > MaxCredentialLength || !printable(cred) {
			t.Fatalf("returned unusable credential %q", cred)
		}
		if b, ok := bearer(header); ok && header != "" {
			if cred != b {
				t.Fatalf("well-formed header %q lost to the query", header)
			}
		} else if cred != query {
			t.Fatalf("credential %q is neither the header's nor the query's", cred)
		}
	})
}

// FuzzJSONContentType: jsonContentType never panics, and accepts only one
// header whose media type is application/json with no charset but utf-8.
func FuzzJSONContentType(f *testing.F) {
	for _, seed := range []string{
		"application/json", "Application/JSON; charset=UTF-8", "application/json;charset=latin1", "text/plain",
		"application/json, text/plain", "application/jsonx", `application/json; charset="utf-8"`, "",
		"multipart/form-data; boundary=x", "application/json; charset=utf-8; charset=utf-16",
		"application/j\u017fon", "\u212aapplication/json",
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, ct string, twice bool) {
		r := &http.Request{Header: http.Header{}}
		r.Header.Add("Content-Type", ct)
		if twice {
			r.Header.Add("Content-Type", ct)
		}
		if !jsonContentType(r) {
			return
		}
		mt, params, err := mime.ParseMediaType(ct)
		if twice || err != nil || mt != "application/json" {
			t.Fatalf("accepted %q (twice %v)", ct, twice)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			t.Fatalf("accepted charset %q", cs)
		}
	})
}
