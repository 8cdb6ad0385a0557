package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/livekit/protocol/auth"

	"github.com/voicebroker/voicebroker/api"
)

// validating checks every request and response crossing it against the
// OpenAPI document, and records which operations were exercised.
type validating struct {
	t      *testing.T
	router routers.Router
	base   http.RoundTripper
	mu     sync.Mutex
	seen   map[string]bool
	// invalid marks the next request as deliberately malformed: its request
	// validation must fail, its response must still match the document.
	invalid bool
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s is not in the document: %v", req.Method, req.URL.Path, err)
		return v.base.RoundTrip(req)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	v.mu.Lock()
	invalid := v.invalid
	v.invalid = false
	v.seen[route.Method+" "+route.Path] = true
	v.mu.Unlock()
	switch {
	case invalid && reqErr == nil:
		v.t.Errorf("%s %s: a deliberately bad request passed the document's validation", req.Method, req.URL.Path)
	case !invalid && reqErr != nil:
		v.t.Errorf("%s %s: request does not match the document: %v", req.Method, req.URL.Path, reqErr)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		v.t.Errorf("%s %s -> %d: response does not match the document: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, respBody)
	}
	return resp, nil
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/webhook+json", openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/jwk-set+json", openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.FileBodyDecoder)
}

// TestOpenAPIDocumentMatchesServer drives the real server, LiveKit
// included, through every documented operation and validates each request
// and response against api/openapi.yaml, so the two cannot drift.
func TestOpenAPIDocumentMatchesServer(t *testing.T) {
	k := newKeys(t)
	b, lk := startWithLiveKit(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "1000"})

	served := do(t, "GET", b.URL+"/openapi.yaml", "", nil)
	if served.Status != 200 || served.Raw != string(api.OpenAPI) {
		t.Fatal("GET /openapi.yaml does not serve api/openapi.yaml")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the document is not valid: %v", err)
	}
	// The admin API on a writable registry (the embedded development
	// tenant's), beside the file broker, whose registry is read-only.
	adm := startAdmin(t, map[string]string{"BROKER_CONFIG": ""})
	doc.Servers = openapi3.Servers{{URL: b.URL}, {URL: adm.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	v := &validating{t: t, router: router, base: http.DefaultTransport, seen: map[string]bool{}}
	saved := client.Transport
	client.Transport = v
	defer func() { client.Transport = saved }()
	bad := func() { v.mu.Lock(); v.invalid = true; v.mu.Unlock() }

	for _, p := range []string{"/", "/healthz", "/readyz", "/metrics", "/openapi.yaml", "/.well-known/jwks.json"} {
		do(t, "GET", b.URL+p, "", nil)
	}
	ticket := b.mint(t, k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "identity": "doc-1", "metadata": map[string]any{"a": 1}})
	bad()
	expect(t, do(t, "POST", b.URL+"/token", k.acme, map[string]any{"agent": "florencia", "channel": "sip"}), 400, "invalid_request")
	expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("D", 43), flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": ticket}), 200, "")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": ticket}), 401, "token_used")

	const origin = "https://demo.acme.example"
	pre := do(t, "OPTIONS", b.URL+"/public/token", "", nil, "Origin", origin, "Access-Control-Request-Method", "POST")
	if pre.Status != 204 {
		t.Fatalf("preflight %d", pre.Status)
	}
	pub := do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "chat"}, "Origin", origin)
	expect(t, pub, 201, "")
	do(t, "OPTIONS", b.URL+"/connect", "", nil, "Origin", origin, "Access-Control-Request-Method", "POST")
	conn := do(t, "POST", b.URL+"/connect", pub.Body["token"].(string), nil, "Origin", origin)
	expect(t, conn, 201, "")

	// Sender-constrained tickets: dpop_jkt on both mints, the DPoP header
	// and its refusals at /connect, cnf from /token/redeem.
	key := newDPoPKey(t)
	bound := b.mint(t, k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "dpop_jkt": key.jkt})
	expect(t, do(t, "POST", b.URL+"/connect", bound, nil), 401, "dpop_required")
	expect(t, do(t, "POST", b.URL+"/connect", bound, nil, "DPoP", newDPoPKey(t).proof(t)), 401, "dpop_invalid")
	expect(t, do(t, "POST", b.URL+"/connect", bound, nil, "DPoP", key.proof(t)), 201, "")
	bad()
	expect(t, do(t, "POST", b.URL+"/token", k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "dpop_jkt": "abc"}), 400, "invalid_request")
	boundPub := do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "chat", "dpop_jkt": key.jkt}, "Origin", origin)
	expect(t, boundPub, 201, "")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": boundPub.Body["token"].(string)}), 200, "")

	lt := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{
		"agent": "florencia", "participant_identity": "doc-2", "participant_name": "Doc",
		"participant_attributes": map[string]string{"team": "docs"},
	})
	room := join(t, lt)
	roomName := lt.Body["room_name"].(string)
	expect(t, do(t, "GET", b.URL+"/livekit/rooms", k.acme, nil), 200, "")
	waitParticipant(t, b, k.acme, roomName, "doc-2")
	expect(t, do(t, "POST", b.URL+"/livekit/participant/mute", k.acme, map[string]any{
		"room_name": roomName, "participant_identity": "doc-2", "track_sid": "TR_nothere", "muted": true,
	}), 404, "room_not_found")
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", k.acme, map[string]any{"room_name": roomName, "participant_identity": "doc-2"}), 200, "")
	room.Disconnect()

	payload := []byte(`{"event":"room_started","id":"EV_openapi1","room":{"name":"` + roomName + `"}}`)
	sum := sha256.Sum256(payload)
	at := auth.NewAccessToken(lk.APIKey, lk.APISecret).SetValidFor(time.Minute)
	at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	sig, _ := at.ToJWT()
	req, _ := http.NewRequest("POST", b.URL+"/livekit/webhook", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/webhook+json")
	req.Header.Set("Authorization", sig)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v", err)
	} else {
		resp.Body.Close()
	}

	exerciseAdminAPI(t, adm, b, bad)

	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !v.seen[method+" "+path] {
				t.Errorf("%s %s is documented but the test never exercised it", method, path)
			}
		}
	}
}

// exerciseAdminAPI drives every admin route, and their usual refusals,
// through the validating client.
func exerciseAdminAPI(t *testing.T, a *adminBroker, file *broker, bad func()) {
	t.Helper()
	expect(t, do(t, "POST", file.URL+"/admin/orgs", a.admin, map[string]any{"id": "x", "tier": "free"}), 401, "unauthorized")
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "doc", "tier": "free"}), 201, "")
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "doc", "tier": "free"}), 409, "conflict")
	bad()
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "doc2", "tier": "free", "extra": true}), 400, "invalid_request")
	expect(t, a.do(t, "GET", "/admin/orgs?limit=1", nil), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/doc", nil), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/nosuch", nil), 404, "not_found")
	expect(t, a.do(t, "PATCH", "/admin/orgs/doc", map[string]any{"tier": "enterprise", "rate_per_minute": 1000}), 200, "")
	agent := map[string]any{"channels": []string{"webrtc"}, "public": map[string]any{"allowed_origins": []string{"https://doc.example"}}}
	expect(t, a.do(t, "PUT", "/admin/orgs/doc/agents/bot", agent), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/doc/agents/bot", agent), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/doc/agents/bot", nil), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/doc/agents", nil), 200, "")
	pk := a.do(t, "POST", "/admin/orgs/doc/agents/bot/publishable-keys", map[string]any{"env": "test"})
	expect(t, pk, 201, "")
	expect(t, a.do(t, "DELETE", "/admin/orgs/doc/agents/bot/publishable-keys/"+str(pk, "id"), nil), 204, "")
	k := a.do(t, "POST", "/admin/orgs/doc/keys", map[string]any{"id": "self", "scopes": []string{"keys:write"}, "expires_at": "2099-01-01T00:00:00Z"})
	expect(t, k, 201, "")
	expect(t, do(t, "GET", a.URL+"/admin/orgs/doc/keys", str(k, "key"), nil), 200, "")
	expect(t, do(t, "GET", a.URL+"/admin/orgs/doc", str(k, "key"), nil), 404, "not_found")
	expect(t, a.do(t, "DELETE", "/admin/orgs/doc/keys/self", nil), 204, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/doc/jwt-issuers", map[string]any{"jwt_issuers": []map[string]any{{
		"issuer": "https://auth.doc.example", "audience": "vb", "jwks_url": "https://auth.doc.example/jwks", "scopes": []string{"tokens:create"}}}}), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/doc/jwt-issuers", nil), 200, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/doc/livekit", map[string]any{"url": "wss://doc.livekit.example", "api_key": "APIdoc", "api_secret": strings.Repeat("s", 40)}), 200, "")
	expect(t, a.do(t, "GET", "/admin/orgs/doc/livekit", nil), 200, "")
	expect(t, a.do(t, "DELETE", "/admin/orgs/doc/livekit", nil), 204, "")
	expect(t, a.do(t, "GET", "/admin/audit?org=doc&limit=2", nil), 200, "")
	expect(t, a.do(t, "DELETE", "/admin/orgs/doc/agents/bot", nil), 204, "")
	expect(t, a.do(t, "DELETE", "/admin/orgs/doc", nil), 204, "")
}

// checkWithDocument makes every request of the harness's client, until the
// test ends, be validated (request and response) against api/openapi.yaml
// as served by the given base URLs.
func checkWithDocument(t *testing.T, servers ...string) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, s := range servers {
		doc.Servers = append(doc.Servers, &openapi3.Server{URL: s})
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	saved := client.Transport
	client.Transport = &validating{t: t, router: router, base: http.DefaultTransport, seen: map[string]bool{}}
	t.Cleanup(func() { client.Transport = saved })
}
