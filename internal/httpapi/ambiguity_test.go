package httpapi

// Tests of requests that two readers could read differently: a ticket sent
// twice, two Origin headers, attribute names that differ only in case, a
// body not declared as JSON. Each is refused, never resolved by picking one.

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// raw sends a request with exactly the headers given (name, value pairs,
// repeats kept, none added) and returns the answer.
func (u *unit) raw(t *testing.T, method, path, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	}
	return a
}

const jsonCT = "application/json"

// TestConnectTicketOnce: /connect takes the ticket from the Authorization
// header or from the body, and refuses one in both (400 invalid_request,
// the ticket left usable) instead of using the header's. Any Authorization
// header counts, well formed or not; with the ticket in the header, a body
// is still read strictly.
func TestConnectTicketOnce(t *testing.T) {
	u := newUnit(t, true)
	tok, other := u.mint(t), u.mint(t)
	body := func(v string) string { return `{"token":"` + v + `"}` }
	for _, tc := range []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"the same ticket in both", body(tok), []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"two tickets", body(other), []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a malformed header and a body ticket", body(tok), []string{"Authorization", "Token " + tok}, 400, "invalid_request"},
		{"an empty bearer and a body ticket", body(tok), []string{"Authorization", "Bearer"}, 400, "invalid_request"},
		{"two headers and a body ticket", body(tok), []string{"Authorization", "Bearer " + tok, "Authorization", "Bearer " + other}, 400, "invalid_request"},
		{"a header and an empty body token", `{"token":""}`, []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a header and a null body token", `{"token":null}`, []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a header and TOKEN in the body", `{"TOKEN":"` + tok + `"}`, []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a header and an unknown field", `{"ticket":"x"}`, []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a header and a body that is not JSON", `token=` + tok, []string{"Authorization", "Bearer " + tok}, 400, "invalid_request"},
		{"a body with the token twice", `{"token":"` + tok + `","token":"` + other + `"}`, nil, 400, "invalid_request"},
		{"two headers, no body", "", []string{"Authorization", "Bearer " + tok, "Authorization", "Bearer " + tok}, 401, "invalid_auth_header"},
		{"nothing at all", "", nil, 401, "missing_auth_header"},
		{"a body without the token", `{}`, nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u.raw(t, "POST", "/connect", tc.body, append([]string{"Content-Type", jsonCT}, tc.headers...)...).expect(t, tc.status, tc.code)
		})
	}
	if n := u.store.count("ConsumeNonce"); n != 0 {
		t.Fatalf("a refused /connect consumed a ticket (%d calls)", n)
	}
	// Both tickets are still usable, each one way.
	u.raw(t, "POST", "/connect", "", "Authorization", "Bearer "+tok).expect(t, 201, "")
	u.raw(t, "POST", "/connect", body(other), "Content-Type", jsonCT).expect(t, 201, "")
	// The header with an empty object: the ticket is the header's.
	third := u.mint(t)
	u.raw(t, "POST", "/connect", `{}`, "Content-Type", jsonCT, "Authorization", "Bearer "+third).expect(t, 201, "")
}

// TestOneOriginHeader: two Origin headers on /public/token, /connect or
// their preflights are 403 origin_not_allowed with no CORS headers,
// whichever of them is allowed; the ticket of a refused /connect stays
// usable.
func TestOneOriginHeader(t *testing.T) {
	u := newUnit(t, true)
	const evil = "https://evil.example"
	pub := func(origins ...string) answer {
		h := []string{"Content-Type", jsonCT, "Authorization", "Bearer " + u.pk}
		for _, o := range origins {
			h = append(h, "Origin", o)
		}
		return u.raw(t, "POST", "/public/token", `{"agent":"bot","channel":"webrtc"}`, h...)
	}
	noCORS := func(t *testing.T, a answer) {
		t.Helper()
		if v := a.header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("CORS header %q on a refused answer", v)
		}
	}
	for name, origins := range map[string][]string{
		"the allowed origin twice":     {publicOrigin, publicOrigin},
		"allowed, then another":        {publicOrigin, evil},
		"another, then allowed":        {evil, publicOrigin},
		"allowed, then an empty value": {publicOrigin, ""},
	} {
		t.Run("public token: "+name, func(t *testing.T) {
			a := pub(origins...)
			a.expect(t, 403, "origin_not_allowed")
			noCORS(t, a)
		})
	}
	t.Run("public token: two origins in one header", func(t *testing.T) {
		pub(publicOrigin+", "+publicOrigin).expect(t, 403, "origin_not_allowed")
	})

	pubTicket := pub(publicOrigin)
	pubTicket.expect(t, 201, "")
	ticket := pubTicket.body["token"].(string)
	backend := u.mint(t)
	for name, origins := range map[string][]string{
		"the ticket's origin twice":     {publicOrigin, publicOrigin},
		"the ticket's, then another":    {publicOrigin, evil},
		"another, then the ticket's":    {evil, publicOrigin},
		"two for a backend ticket":      {evil, evil},
		"an empty one and the ticket's": {"", publicOrigin},
	} {
		t.Run("connect: "+name, func(t *testing.T) {
			tok := ticket
			if strings.Contains(name, "backend") {
				tok = backend
			}
			h := []string{"Authorization", "Bearer " + tok}
			for _, o := range origins {
				h = append(h, "Origin", o)
			}
			a := u.raw(t, "POST", "/connect", "", h...)
			a.expect(t, 403, "origin_not_allowed")
			noCORS(t, a)
		})
	}
	for _, path := range []string{"/connect", "/public/token"} {
		t.Run("preflight "+path, func(t *testing.T) {
			a := u.raw(t, "OPTIONS", path, "", "Origin", publicOrigin, "Origin", publicOrigin, "Access-Control-Request-Method", "POST")
			a.expect(t, 403, "origin_not_allowed")
			noCORS(t, a)
		})
	}
	if n := u.store.count("ConsumeNonce"); n != 0 {
		t.Fatalf("a refused /connect consumed a ticket (%d calls)", n)
	}
	u.raw(t, "POST", "/connect", "", "Authorization", "Bearer "+ticket, "Origin", publicOrigin).expect(t, 201, "")
	u.raw(t, "POST", "/connect", "", "Authorization", "Bearer "+backend).expect(t, 201, "")
}

// TestReservedAttributesAnyCase: /livekit/token refuses the broker's and
// LiveKit's attribute names in any case (Unicode case folding: the Kelvin
// sign is a k), and names that differ only in case from each other.
func TestReservedAttributesAnyCase(t *testing.T) {
	u := newUnit(t, true)
	for _, attrs := range []string{
		`{"ORG":"globex"}`, `{"Org":"globex"}`, `{"AGENT":"x"}`, `{"Channel":"chat"}`,
		`{"LK.x":"1"}`, `{"Lk.agent.state":"speaking"}`, `{"lK.agent.name":"florencia"}`,
		`{"l\u212A.agent.state":"speaking"}`, `{"team":"a","TEAM":"b"}`,
	} {
		t.Run(attrs, func(t *testing.T) {
			u.do(t, "POST", "/livekit/token", "sk_any", `{"agent":"bot","participant_attributes":`+attrs+`}`).expect(t, 400, "invalid_request")
		})
	}
	for _, attrs := range []string{`{"organisation":"x"}`, `{"lkx":"1"}`, `{"l.k":"1"}`, `{"team":"a","teams":"b"}`} {
		t.Run(attrs, func(t *testing.T) {
			u.do(t, "POST", "/livekit/token", "sk_any", `{"agent":"bot","participant_attributes":`+attrs+`}`).expect(t, 201, "")
		})
	}
	if n := len(u.lk.tokens); n != 4 {
		t.Fatalf("%d LiveKit tokens signed, want 4 (the accepted ones)", n)
	}
	// checkAttributes itself, for names no JSON body can carry twice.
	for _, attrs := range []map[string]string{
		{"team": "a", "TEAM": "b"}, {"Team": "a", "tEAM": "b"}, {"\u212Aey": "a", "key": "b"}, {"ORG": "x"},
	} {
		if err := checkAttributes(attrs); err == nil {
			t.Errorf("%v accepted", attrs)
		}
	}
}

// TestBodiesAreDeclaredJSON: a body must come with Content-Type
// application/json (any case, any parameters, charset utf-8 if named);
// text/plain, form and multipart bodies, which a cross-site page can send
// without a CORS preflight, are 400 invalid_request before anything reads
// them. A request without a body needs no Content-Type.
func TestBodiesAreDeclaredJSON(t *testing.T) {
	u := newUnit(t, true)
	tok := u.mint(t)
	bodies := []struct{ method, path, cred, body string }{
		{"POST", "/token", "sk_any", mintBody},
		{"POST", "/token/redeem", "sk_any", `{"token":"` + tok + `"}`},
		{"POST", "/connect", "", `{"token":"` + tok + `"}`},
		{"POST", "/public/token", u.pk, `{"agent":"bot","channel":"webrtc"}`},
		{"POST", "/livekit/token", "sk_any", `{"agent":"bot"}`},
		{"DELETE", "/livekit/participant", "sk_any", `{"room_name":"demo_x","participant_identity":"u"}`},
		{"POST", "/livekit/participant/mute", "sk_any", `{"room_name":"demo_x","participant_identity":"u","track_sid":"TR_1","muted":true}`},
	}
	for _, ct := range [][]string{
		nil, {"text/plain"}, {"text/plain;charset=UTF-8"}, {"application/x-www-form-urlencoded"},
		{"multipart/form-data; boundary=x"}, {"application/json; charset=iso-8859-1"}, {"text/json"},
		{"application/json", "application/json"}, {"application/jsonx"}, {""},
	} {
		for _, b := range bodies {
			t.Run(strings.Join(ct, "+")+" "+b.path, func(t *testing.T) {
				h := []string{"Origin", publicOrigin}
				if b.cred != "" {
					h = append(h, "Authorization", "Bearer "+b.cred)
				}
				for _, v := range ct {
					h = append(h, "Content-Type", v)
				}
				a := u.raw(t, b.method, b.path, b.body, h...)
				a.expect(t, 400, "invalid_request")
				if !strings.Contains(a.body["message"].(string), "Content-Type: application/json") {
					t.Fatalf("message %q does not say what to send", a.body["message"])
				}
			})
		}
	}
	if u.store.count("PutNonce") != 1 || u.store.count("ConsumeNonce") != 0 || len(u.lk.tokens) != 0 {
		t.Fatal("a body not declared JSON was acted on")
	}
	for _, ct := range []string{"application/json", "Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8"} {
		t.Run("accepted: "+ct, func(t *testing.T) {
			u.raw(t, "POST", "/token", mintBody, "Authorization", "Bearer sk_any", "Content-Type", ct).expect(t, 201, "")
		})
	}
	t.Run("no body, no Content-Type", func(t *testing.T) {
		u.raw(t, "POST", "/connect", "", "Authorization", "Bearer "+tok).expect(t, 201, "")
		u.raw(t, "GET", "/livekit/rooms", "", "Authorization", "Bearer sk_any").expect(t, 200, "")
	})
	t.Run("no body, any Content-Type", func(t *testing.T) {
		u.raw(t, "POST", "/connect", "", "Authorization", "Bearer "+u.mint(t), "Content-Type", "text/plain").expect(t, 201, "")
	})
}
