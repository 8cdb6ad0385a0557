package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// debugEcho, when set, makes the Echo of viaEcho and viaWriteMinted one
// in debug mode.
var debugEcho bool

// viaEcho answers r as the mint did before writeMinted: with c.JSON.
func viaEcho(t testing.TB, target string, r mintResponse) *httptest.ResponseRecorder {
	e := echo.New()
	e.Debug = debugEcho
	w := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodPost, target, nil), w)
	if err := c.JSON(http.StatusCreated, r); err != nil {
		t.Fatal(err)
	}
	return w
}

func viaWriteMinted(t testing.TB, target string, r mintResponse) *httptest.ResponseRecorder {
	e := echo.New()
	e.Debug = debugEcho
	w := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodPost, target, nil), w)
	if err := writeMinted(c, r); err != nil {
		t.Fatal(err)
	}
	return w
}

// sameAnswer fails unless both answers have the same status, headers and
// bytes.
func sameAnswer(t testing.TB, target string, r mintResponse) {
	t.Helper()
	want, got := viaEcho(t, target, r), viaWriteMinted(t, target, r)
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Fatalf("%q %+v:\n got %d %q\nwant %d %q", target, r, got.Code, got.Body, want.Code, want.Body)
	}
	if g, w := got.Header(), want.Header(); len(g) != len(w) || g.Get("Content-Type") != w.Get("Content-Type") {
		t.Fatalf("headers: got %v, want %v", g, w)
	}
}

func TestWriteMintedIsEncodingJSON(t *testing.T) {
	tok := "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwOi8vYnJva2VyIn0.c2ln-_"
	for _, tc := range []struct {
		name, target string
		r            mintResponse
	}{
		{"plain", "/token", mintResponse{Token: tok, Server: "wss://voice.example.com", ExpiresIn: 60}},
		{"empty", "/token", mintResponse{}},
		{"negative", "/token", mintResponse{Token: tok, Server: "x", ExpiresIn: -5}},
		{"html escapes", "/token", mintResponse{Token: tok, Server: "https://a.example/?a=1&b=<2>", ExpiresIn: 3600}},
		{"each HTML character alone", "/token", mintResponse{Token: "a<b", Server: "c>d", ExpiresIn: 1}},
		{"ampersand alone", "/token", mintResponse{Token: "a&b", Server: "", ExpiresIn: 1}},
		{"quotes and controls", "/token", mintResponse{Token: "a\"b\\c\n\t\x00\x7f", Server: "\u2028\u2029", ExpiresIn: 1}},
		{"non-ASCII and invalid UTF-8", "/token", mintResponse{Token: "é日本\xff\xfe", Server: "wss://bücher.example", ExpiresIn: 1}},
		{"pretty", "/token?pretty", mintResponse{Token: tok, Server: "wss://voice.example.com", ExpiresIn: 60}},
		{"other query", "/token?x=1", mintResponse{Token: tok, Server: "wss://voice.example.com", ExpiresIn: 60}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameAnswer(t, tc.target, tc.r) })
	}
	t.Run("Echo in debug mode", func(t *testing.T) {
		debugEcho = true
		defer func() { debugEcho = false }()
		sameAnswer(t, "/token", mintResponse{Token: tok, Server: "wss://voice.example.com", ExpiresIn: 60})
	})
}

// FuzzWriteMinted: for every token, server and lifetime, writeMinted's
// answer is byte for byte c.JSON's.
func FuzzWriteMinted(f *testing.F) {
	f.Add("eyJ.eyJ.sig", "wss://voice.example.com", 60)
	f.Add("<>&\"\\", "\u2028\x00\xff", -1)
	f.Add("", "", 0)
	f.Fuzz(func(t *testing.T, tok, server string, ttl int) {
		sameAnswer(t, "/token", mintResponse{Token: tok, Server: server, ExpiresIn: ttl})
	})
}
