package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/jsonlog"
	"github.com/voicebroker/voicebroker/internal/store/memory"
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

// auditLines are the per-request audit lines: their message and the keys
// of their attributes after request_id, in the order the broker writes
// them.
var auditLines = map[string]struct {
	msg  string
	keys []string
}{
	"token.mint": {"token minted",
		[]string{"event", "mode", "org", "agent", "channel", "auth_method", "key_id", "jti_hash", "client_ip"}},
	"token.redeem": {"token redeemed",
		[]string{"event", "via", "auth_method", "key_id", "org", "agent", "channel", "jti_hash", "client_ip"}},
	"auth.success": {"authenticated", []string{"event", "method", "org", "key_id", "client_ip", "route"}},
}

// slogAuditLine is an audit line as the request's slog logger writes it
// (With(request_id), then LogAttrs), from the values of line, without its
// time. A value that decodes as raw's decoding is raw: the one invalid
// UTF-8 a line cannot give back.
func slogAuditLine(t *testing.T, line string, v map[string]any, raw string) string {
	t.Helper()
	shape := auditLines[v["event"].(string)]
	attrs := make([]slog.Attr, 0, len(shape.keys))
	for _, k := range shape.keys {
		s, ok := v[k].(string)
		if !ok {
			t.Fatalf("%s is not a string in %s", k, line)
		}
		if s == strings.ToValidUTF8(raw, "\ufffd") {
			s = raw
		}
		attrs = append(attrs, slog.String(k, s))
	}
	var b bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&b, nil)).With(slog.String("request_id", v["request_id"].(string)))
	l.LogAttrs(context.Background(), slog.LevelInfo, shape.msg, attrs...)
	return timeField.ReplaceAllString(strings.TrimSuffix(b.String(), "\n"), "{")
}

// TestAuditLines: the four per-request audit lines (token.mint at
// POST /token and at /public/token, token.redeem, auth.success), written
// through the broker's own logger (jsonlog, whose fast path appends them
// itself) and through a plain slog JSONHandler, are byte for byte what the
// request's slog logger writes for their values; the key id has quotes,
// controls, invalid UTF-8, U+2028 and HTML characters so that every escape
// is taken. No line the requests write holds a credential, a ticket or a
// ticket's nonce.
func TestAuditLines(t *testing.T) {
	const keyID = "k\"\\\n\t\x01\x7f\xff\u2028\u2029<&>é"
	for name, newLog := range map[string]func(io.Writer) *slog.Logger{
		"jsonlog": jsonlog.New,
		"slog":    func(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) },
	} {
		t.Run(name, func(t *testing.T) {
			mem := memory.New(time.Minute)
			t.Cleanup(func() { mem.Close() })
			u := newUnitWithLog(t, true, mem, newLog)
			u.auth.principal.KeyID = keyID
			cred := "sk_live_AuditLineCredentialNeverLogged0123456789"

			a := u.do(t, "POST", "/token", cred, `{"agent":"bot","channel":"webrtc","identity":"ada"}`, "X-Request-Id", "req-mint")
			a.expect(t, 201, "")
			ticket := a.body["token"].(string)
			claims, err := u.ver.Verifier.Verify(ticket)
			if err != nil {
				t.Fatal(err)
			}
			p := u.do(t, "POST", "/public/token", u.pk, `{"agent":"bot","channel":"webrtc"}`,
				"Origin", publicOrigin, "X-Request-Id", "req-public")
			p.expect(t, 201, "")
			public := p.body["token"].(string)
			u.do(t, "POST", "/token/redeem", cred, `{"token":"`+ticket+`"}`, "X-Request-Id", "req-redeem").expect(t, 200, "")
			u.do(t, "POST", "/livekit/token", cred, `{"agent":"bot"}`, "X-Request-Id", "req-livekit").expect(t, 201, "")

			secrets := map[string]string{"credential": cred, "publishable key": u.pk, "ticket's nonce": claims.ID}
			for what, tok := range map[string]string{"ticket": ticket, "public ticket": public} {
				parts := strings.Split(tok, ".")
				secrets[what] = tok
				secrets[what+"'s claims"] = parts[1]
				secrets[what+"'s signature"] = parts[2]
			}
			want := map[string]string{ // request id -> its audit line's event
				"req-mint": "token.mint", "req-public": "token.mint", "req-redeem": "token.redeem", "req-livekit": "auth.success",
			}
			seen := map[string]int{}
			u.logs.mu.Lock()
			logs := u.logs.b.String()
			u.logs.mu.Unlock()
			for _, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
				for what, secret := range secrets {
					if strings.Contains(line, secret) {
						t.Errorf("a log line holds the %s: %s", what, line)
					}
				}
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				event, _ := v["event"].(string)
				if _, ok := auditLines[event]; !ok {
					continue
				}
				id, _ := v["request_id"].(string)
				if want[id] != event {
					t.Errorf("unexpected %s line: %s", event, line)
					continue
				}
				seen[id]++
				if decoded := strings.ToValidUTF8(keyID, "\ufffd"); v["key_id"] != decoded && id != "req-public" {
					t.Errorf("key_id %q, want %q", v["key_id"], decoded)
				}
				if got, want := timeField.ReplaceAllString(line, "{"), slogAuditLine(t, line, v, keyID); got != want {
					t.Errorf("%s line differs from slog's:\n got %s\nwant %s", event, got, want)
				}
			}
			for id, event := range want {
				if seen[id] != 1 {
					t.Errorf("%d %s lines of %s, want 1", seen[id], event, id)
				}
			}
		})
	}
}
