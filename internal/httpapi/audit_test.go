package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// timeField is the time attribute of a JSON log line, which two lines
// written apart never share.
var timeField = regexp.MustCompile(`^\{"time":"[^"]*",`)

// mintLine returns the one token.mint line in u's log.
func mintLine(t *testing.T, u *unit) string {
	t.Helper()
	u.logs.mu.Lock()
	defer u.logs.mu.Unlock()
	var found []string
	for _, line := range strings.Split(u.logs.b.String(), "\n") {
		if strings.Contains(line, `"event":"token.mint"`) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d token.mint lines in %q", len(found), u.logs.b.String())
	}
	return found[0]
}

// oldMintLine is the token.mint line as the broker wrote it through the
// request's logger (slog's With(request_id), then LogAttrs), from the
// values of line, without its time.
func oldMintLine(t *testing.T, line string) string {
	t.Helper()
	var v map[string]string
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&b, nil)).With(slog.String("request_id", v["request_id"]))
	l.LogAttrs(context.Background(), slog.LevelInfo, "token minted",
		slog.String("event", "token.mint"), slog.String("mode", v["mode"]),
		slog.String("org", v["org"]), slog.String("agent", v["agent"]), slog.String("channel", v["channel"]),
		slog.String("auth_method", v["auth_method"]), slog.String("key_id", v["key_id"]), slog.String("jti_hash", v["jti_hash"]),
		slog.String("client_ip", v["client_ip"]))
	return timeField.ReplaceAllString(strings.TrimSuffix(b.String(), "\n"), "{")
}

// TestMintAuditLine: the token.mint line of POST /token and of
// /public/token is byte for byte the line the request's slog logger
// wrote, with every field, and holds neither the credential, nor the
// ticket, nor its nonce.
func TestMintAuditLine(t *testing.T) {
	for _, tc := range []struct {
		name, path, cred, body, mode, method string
		header                               []string
	}{
		{"POST /token", "/token", "sk_live_AuditLineCredentialNeverLogged0123456789",
			`{"agent":"bot","channel":"webrtc","identity":"ada"}`, "backend", "api_key", nil},
		{"POST /public/token", "/public/token", "", `{"agent":"bot","channel":"webrtc"}`, "public", "publishable_key",
			[]string{"Origin", publicOrigin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnit(t, false)
			cred := tc.cred
			if cred == "" {
				cred = u.pk
			}
			hdr := append([]string{"X-Request-Id", "req-audit.1"}, tc.header...)
			a := u.do(t, "POST", tc.path, cred, tc.body, hdr...)
			a.expect(t, 201, "")
			ticket := a.body["token"].(string)
			line := mintLine(t, u)

			got := timeField.ReplaceAllString(line, "{")
			if want := oldMintLine(t, line); got != want {
				t.Fatalf("token.mint line changed:\n got %s\nwant %s", got, want)
			}
			for _, field := range []string{`"level":"INFO"`, `"msg":"token minted"`, `"request_id":"req-audit.1"`,
				`"mode":"` + tc.mode + `"`, `"org":"acme"`, `"agent":"bot"`, `"channel":"webrtc"`,
				`"auth_method":"` + tc.method + `"`, `"client_ip":"127.0.0.1"`, `"jti_hash":"`} {
				if !strings.Contains(got, field) {
					t.Errorf("line %s lacks %s", got, field)
				}
			}
			claims, err := u.ver.Verifier.Verify(ticket)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(ticket, ".")
			for what, secret := range map[string]string{
				"credential": cred, "ticket": ticket, "ticket's signature": parts[2], "ticket's claims": parts[1],
				"nonce": claims.ID,
			} {
				if strings.Contains(line, secret) {
					t.Errorf("the token.mint line holds the %s", what)
				}
			}
			if !strings.Contains(got, `"jti_hash":"`+nonceTag(claims.ID)+`"`) {
				t.Errorf("jti_hash is not the nonce's tag: %s", got)
			}
		})
	}
}
