package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// contractCodes reads the codes and statuses of the contract's error
// table (docs/CONTRACT.md §5).
func contractCodes(t *testing.T) map[Code][]int {
	t.Helper()
	doc, err := os.ReadFile("../../docs/CONTRACT.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## 5. Errors")
	if !ok {
		t.Fatal("no §5 in docs/CONTRACT.md")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	codes := map[Code][]int{}
	// A row's statuses: its status column, and those its "when" column
	// adds ("request headers over 16 KiB: 431").
	line := regexp.MustCompile(`(?m)^\| ([a-z_]+) \|(.*)$`)
	for _, m := range line.FindAllStringSubmatch(sec, -1) {
		for _, f := range regexp.MustCompile(`\d{3}`).FindAllString(m[2], -1) {
			n, _ := strconv.Atoi(f)
			codes[Code(m[1])] = append(codes[Code(m[1])], n)
		}
	}
	if len(codes) < 20 {
		t.Fatalf("read %d codes from the contract's §5: the table's format changed", len(codes))
	}
	return codes
}

// TestErrorTableMatchesContract: every row goes out as a code of the
// contract with a status the contract gives it, unless the row says it is
// outside the contract (and then the contract must indeed lack it).
func TestErrorTableMatchesContract(t *testing.T) {
	contract := contractCodes(t)
	for _, r := range errorTable {
		t.Run(string(r.code), func(t *testing.T) {
			if r.message == "" {
				t.Error("no message")
			}
			wire := r.wireCode()
			statuses, known := contract[wire]
			switch {
			case r.wire.outside && known:
				t.Errorf("marked outside the contract, but the contract has %s", wire)
			case r.wire.outside:
			case !known:
				t.Errorf("goes out as %s, which the contract lacks", wire)
			case r.status == 0:
				// echo's own 4xx (codeRequestRefused).
			case r.code == codeNoTenants:
				// /readyz's 503, outside §5's table.
			case !contains(statuses, r.status):
				t.Errorf("status %d; the contract gives %s %v", r.status, wire, statuses)
			}
			if r.wire.as != "" && r.wire.as == r.code {
				t.Error("sentAs its own code: write inContract")
			}
		})
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestErrorAnswers: what the client sees for each kind of error a
// handler returns: the contract's code, the status and the message.
func TestErrorAnswers(t *testing.T) {
	authErr := func(kind error) error { return &auth.Error{Kind: kind, Reason: "r"} }
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   Code
		says   string
	}{
		{"an *Error as it is", apiError(CodeUnknownAgent, "no such agent: x"), 404, "unknown_agent", "no such agent: x"},
		{"generic message", apiError(CodeRoomForbidden, ""), 403, "room_forbidden", "another organisation"},
		{"headers too large", apiError(codeHeadersTooLarge, ""), 431, "payload_too_large", "headers"},
		{"store down", fmt.Errorf("put: %w", store.ErrUnavailable), 503, "store_unavailable", "store"},
		{"ticket expired", token.ErrExpired, 401, "token_expired", "expired"},
		{"ticket invalid", fmt.Errorf("%w: sig", token.ErrInvalid), 401, "token_invalid", "not valid"},
		{"auth service said 4xx", authErr(auth.ErrServiceDenied), 401, "auth_service_error", "auth service"},
		{"auth service said 5xx", authErr(auth.ErrServiceFailed), 502, "auth_service_error", "auth service"},
		{"auth service unreachable", authErr(auth.ErrServiceUnavailable), 503, "auth_service_unavailable", "unreachable"},
		{"auth config", authErr(auth.ErrConfig), 500, "config_error", "misconfigured"},
		{"auth signing", authErr(auth.ErrSigning), 500, "jwt_signing_error", "signed"},
		{"ip", authErr(auth.ErrIPNotAllowed), 403, "ip_not_allowed", "address"},
		{"scope", authErr(auth.ErrInsufficientScope), 403, "insufficient_scope", "scope"},
		{"unauthorized", authErr(auth.ErrUnauthorized), 401, "unauthorized", "not valid"},
		{"LiveKit: no such room", fmt.Errorf("%w: list_rooms", livekit.ErrNotFound), 404, "room_not_found", "no such room"},
		{"LiveKit down", fmt.Errorf("%w: list_rooms: EOF", livekit.ErrUnavailable), 502, "livekit_unavailable", "LiveKit"},
		{"echo 404", echo.ErrNotFound, 404, "not_found", "endpoint"},
		{"echo 405", echo.ErrMethodNotAllowed, 405, "method_not_allowed", "method"},
		{"echo 413", echo.ErrStatusRequestEntityTooLarge, 413, "payload_too_large", "16 KiB"},
		{"echo 503", echo.ErrServiceUnavailable, 503, "store_unavailable", "store"},
		{"echo 415 keeps its status", echo.ErrUnsupportedMediaType, 415, "invalid_request", "malformed"},
		{"echo 500", echo.ErrInternalServerError, 500, "config_error", "could not complete"},
		{"anything else", errors.New("boom"), 500, "config_error", "could not complete"},
		{"livekit not configured", apiError(CodeLiveKitNotConfigured, ""), 501, "livekit_not_configured", "LiveKit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPost, http.MethodHead} {
				rec := httptest.NewRecorder()
				c := echo.New().NewContext(httptest.NewRequest(method, "/", nil), rec)
				if err := writeError(c, classify(tc.err)); err != nil {
					t.Fatal(err)
				}
				if rec.Code != tc.status {
					t.Errorf("%s: status %d, want %d", method, rec.Code, tc.status)
				}
				if method == http.MethodHead {
					if rec.Body.Len() != 0 {
						t.Errorf("HEAD answered with a body: %s", rec.Body)
					}
					continue
				}
				var b map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || len(b) != 2 {
					t.Fatalf("body %s is not the contract's shape", rec.Body)
				}
				if b["error"] != string(tc.code) || !strings.Contains(b["message"], tc.says) {
					t.Errorf("got %v, want %s saying %q", b, tc.code, tc.says)
				}
			}
		})
	}
}
