package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAmbiguousRequestsRefused: on a real broker with a real LiveKit,
// what two readers could read differently is refused, and leaves the
// ticket it carried usable: a /connect ticket in the header and the body,
// two Origin headers, reserved participant attributes in another case,
// and bodies not declared as JSON (the shapes a cross-site page can send
// without a CORS preflight). The documented clients' own requests pass.
func TestAmbiguousRequestsRefused(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "100000", "BROKER_CONNECT_RATE_PER_MINUTE": "100000"})
	k := b.keys
	const allowed = "https://demo.acme.example"

	t.Run("a ticket in the header and the body", func(t *testing.T) {
		ticket, other := b.mint(t, k.acme, flo), b.mint(t, k.acme, flo)
		expect(t, do(t, "POST", b.URL+"/connect", ticket, map[string]string{"token": ticket}), 400, "invalid_request")
		expect(t, do(t, "POST", b.URL+"/connect", ticket, map[string]string{"token": other}), 400, "invalid_request")
		expect(t, do(t, "POST", b.URL+"/connect", "", map[string]string{"token": other}, "Authorization", "Basic eDp5"), 400, "invalid_request")
		expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 201, "")
		expect(t, do(t, "POST", b.URL+"/connect", "", map[string]string{"token": other}), 201, "")
	})

	t.Run("two Origin headers", func(t *testing.T) {
		body := map[string]any{"agent": "florencia", "channel": "webrtc"}
		r := do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", allowed, "Origin", allowed)
		expect(t, r, 403, "origin_not_allowed")
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("CORS headers on a refused answer")
		}
		expect(t, do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", allowed, "Origin", "https://evil.example"), 403, "origin_not_allowed")
		r = do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", allowed)
		expect(t, r, 201, "")
		ticket := r.Body["token"].(string)
		expect(t, do(t, "POST", b.URL+"/connect", ticket, nil, "Origin", allowed, "Origin", allowed), 403, "origin_not_allowed")
		expect(t, do(t, "POST", b.URL+"/connect", b.mint(t, k.acme, flo), nil, "Origin", "https://a.example", "Origin", "https://b.example"), 403, "origin_not_allowed")
		expect(t, do(t, "OPTIONS", b.URL+"/public/token", "", nil, "Origin", allowed, "Origin", allowed, "Access-Control-Request-Method", "POST"), 403, "origin_not_allowed")
		expect(t, do(t, "POST", b.URL+"/connect", ticket, nil, "Origin", allowed), 201, "")
	})

	t.Run("reserved attributes in another case", func(t *testing.T) {
		for _, attrs := range []map[string]string{{"ORG": "globex"}, {"Agent": "hank"}, {"CHANNEL": "chat"}, {"LK.agent.state": "speaking"}, {"Lk.x": "1"}} {
			expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_attributes": attrs}), 400, "invalid_request")
		}
		r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_identity": "attrs-ok", "participant_attributes": map[string]string{"team": "blue"}})
		join(t, r)
		p := waitParticipant(t, b, k.acme, r.Body["room_name"].(string), "attrs-ok")
		if attrs, _ := p["attributes"].(map[string]any); attrs["team"] != "blue" || attrs["org"] != "acme" || len(attrs) != 4 {
			t.Fatalf("attributes %v", p["attributes"])
		}
	})

	t.Run("bodies not declared JSON", func(t *testing.T) {
		ticket := b.mint(t, k.acme, flo)
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			// A page on any site can send these with fetch(..., {mode: "no-cors"}).
			expect(t, postAs(t, b.URL+"/token?api_key="+k.acme, ct, `{"agent":"florencia","channel":"webrtc"}`), 400, "invalid_request")
			expect(t, postAs(t, b.URL+"/connect", ct, `{"token":"`+ticket+`"}`), 400, "invalid_request")
			expect(t, postAs(t, b.URL+"/livekit/participant/mute?api_key="+k.acme, ct, `{"room_name":"demo_x","participant_identity":"u","track_sid":"TR_x","muted":true}`), 400, "invalid_request")
		}
		expect(t, do(t, "POST", b.URL+"/token", k.acme, []byte(`{"agent":"florencia","channel":"webrtc"}`)), 201, "") // do sets application/json
		expect(t, do(t, "POST", b.URL+"/connect", "", map[string]string{"token": ticket}), 201, "")
	})

	t.Run("the documented clients' requests", func(t *testing.T) {
		// README and the broker's printed curl line: -H 'Content-Type: application/json' -d '{...}'.
		r := do(t, "POST", b.URL+"/token", k.acme, `{"agent":"florencia","channel":"webrtc"}`)
		expect(t, r, 201, "")
		// clients/js: /connect with Authorization and Accept, no body, no Content-Type.
		expect(t, do(t, "POST", b.URL+"/connect", r.Body["token"].(string), nil, "Accept", "application/json"), 201, "")
		// The widget: Content-Type application/json and no body.
		expect(t, do(t, "POST", b.URL+"/connect", b.mint(t, k.acme, flo), nil, "Content-Type", "application/json"), 201, "")
		// LiveKit's TokenSource.endpoint: Content-Type application/json, proto field names.
		expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme,
			`{"participant_identity":"ts","room_config":{"agents":[{"agent_name":"florencia"}]}}`), 201, "")
		// clients/js public mode: postJSON with the publishable key.
		expect(t, do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "webrtc"}, "Origin", allowed, "Accept", "application/json"), 201, "")
	})
}

// postAs posts body with exactly one Content-Type, ct, and no other header.
func postAs(t *testing.T, url, ct, body string) response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	json.Unmarshal(raw, &r.Body)
	return r
}
