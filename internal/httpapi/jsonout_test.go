package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/pkg/token"
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

// sameRedeemed fails unless writeRedeemed answers r as c.JSON does.
func sameRedeemed(t testing.TB, target string, r redeemResponse) {
	t.Helper()
	answer := func(write func(echo.Context) error) *httptest.ResponseRecorder {
		e := echo.New()
		w := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodPost, target, nil), w)
		if err := write(c); err != nil {
			w.Code = -1 // c.JSON refused (invalid metadata): both must
		}
		return w
	}
	want := answer(func(c echo.Context) error { return c.JSON(http.StatusOK, r) })
	got := answer(func(c echo.Context) error { return writeRedeemed(c, r) })
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Fatalf("%q %+v:\n got %d %q\nwant %d %q", target, r, got.Code, got.Body, want.Code, want.Body)
	}
	if g, w := got.Header(), want.Header(); len(g) != len(w) || g.Get("Content-Type") != w.Get("Content-Type") {
		t.Fatalf("headers: got %v, want %v", g, w)
	}
}

func TestWriteRedeemedIsEncodingJSON(t *testing.T) {
	full := redeemResponse{Org: "acme", Agent: "bot", Channel: "webrtc", Identity: "user-Ab3_-x",
		Metadata: []byte(`{"plan":"pro","n":[1,2.5,-3e2,true,null],"o":{"a":"b \"q\" \\ \u00e9"}}`),
		Origin:   "https://app.acme.example", Cnf: &token.Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
	for _, tc := range []struct {
		name, target string
		r            redeemResponse
	}{
		{"full", "/token/redeem", full},
		{"no origin, no cnf", "/token/redeem", redeemResponse{Org: "acme", Agent: "bot", Channel: "chat", Identity: "u", Metadata: []byte(`{}`)}},
		{"no metadata", "/token/redeem", redeemResponse{Org: "acme", Agent: "bot", Channel: "chat", Identity: "u"}},
		{"empty", "/token/redeem", redeemResponse{}},
		{"metadata with spaces outside strings", "/token/redeem", redeemResponse{Metadata: []byte(`{ "a" : [1, 2] }`)}},
		{"metadata with a space in a string", "/token/redeem", redeemResponse{Metadata: []byte(`{"a":"b c"}`)}},
		{"metadata with HTML characters", "/token/redeem", redeemResponse{Metadata: []byte(`{"a":"<b>&"}`)}},
		{"metadata with U+2028", "/token/redeem", redeemResponse{Metadata: []byte("{\"a\":\"\u2028\"}")}},
		{"metadata with an escaped quote at the end", "/token/redeem", redeemResponse{Metadata: []byte(`{"a\"":"\\"}`)}},
		{"invalid metadata", "/token/redeem", redeemResponse{Metadata: []byte(`{"a":`)}},
		{"identity with controls and non-ASCII", "/token/redeem", redeemResponse{Identity: "é\u2028<\x01", Metadata: []byte(`{}`)}},
		{"pretty", "/token/redeem?pretty", full},
	} {
		t.Run(tc.name, func(t *testing.T) { sameRedeemed(t, tc.target, tc.r) })
	}
}

// FuzzWriteRedeemed: for every field and any metadata bytes, writeRedeemed
// answers byte for byte as c.JSON.
func FuzzWriteRedeemed(f *testing.F) {
	f.Add("acme", "bot", "webrtc", "user-1", []byte(`{"a":1}`), "https://a.example", "jkt")
	f.Add("", "", "", "", []byte(nil), "", "")
	f.Add("a<", "&", "\u2028", "\xff", []byte(`{"a":"b\"}"}`), "x", "")
	f.Add("a", "b", "c", "d", []byte(`[1, {"x" :null}]`), "", "k")
	f.Fuzz(func(t *testing.T, org, agent, channel, identity string, metadata []byte, origin, jkt string) {
		r := redeemResponse{Org: org, Agent: agent, Channel: channel, Identity: identity, Metadata: metadata, Origin: origin}
		if jkt != "" {
			r.Cnf = &token.Confirmation{JKT: jkt}
		}
		sameRedeemed(t, "/token/redeem", r)
	})
}
