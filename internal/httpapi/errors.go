package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Error codes of the contract (§5) and a few for routing.
const (
	CodeInvalidRequest         = "invalid_request"
	CodeInvalidRoomName        = "invalid_room_name"
	CodeMissingAuthHeader      = "missing_auth_header"
	CodeInvalidAuthHeader      = "invalid_auth_header"
	CodeUnauthorized           = "unauthorized"
	CodeTokenInvalid           = "token_invalid"
	CodeTokenExpired           = "token_expired"
	CodeTokenUsed              = "token_used"
	CodeInsufficientScope      = "insufficient_scope"
	CodeIPNotAllowed           = "ip_not_allowed"
	CodeOriginNotAllowed       = "origin_not_allowed"
	CodeDPoPRequired           = "dpop_required"
	CodeDPoPInvalid            = "dpop_invalid"
	CodeRoomForbidden          = "room_forbidden"
	CodeUnknownAgent           = "unknown_agent"
	CodeRoomNotFound           = "room_not_found"
	CodePayloadTooLarge        = "payload_too_large"
	CodeRateLimited            = "rate_limited"
	CodeConfigError            = "config_error"
	CodeJWTSigningError        = "jwt_signing_error"
	CodeLiveKitNotConfigured   = "livekit_not_configured"
	CodeAuthServiceError       = "auth_service_error"
	CodeLiveKitUnavailable     = "livekit_unavailable"
	CodeStoreUnavailable       = "store_unavailable"
	CodeAuthServiceUnavailable = "auth_service_unavailable"
	CodeNotFound               = "not_found"
	CodeMethodNotAllowed       = "method_not_allowed"
	// CodeInternal classifies a fault of the broker itself (a panic, an
	// impossible state). It is not a code of the contract: it goes out as
	// config_error, the contract's code for a 500 that is not about
	// signing, with its own message (see errorHandler).
	CodeInternal = "internal_error"
)

// statuses is the one table from error code to HTTP status.
var statuses = map[string]int{
	CodeInvalidRequest:         http.StatusBadRequest,
	CodeInvalidRoomName:        http.StatusBadRequest,
	CodeMissingAuthHeader:      http.StatusUnauthorized,
	CodeInvalidAuthHeader:      http.StatusUnauthorized,
	CodeUnauthorized:           http.StatusUnauthorized,
	CodeTokenInvalid:           http.StatusUnauthorized,
	CodeTokenExpired:           http.StatusUnauthorized,
	CodeTokenUsed:              http.StatusUnauthorized,
	CodeInsufficientScope:      http.StatusForbidden,
	CodeIPNotAllowed:           http.StatusForbidden,
	CodeOriginNotAllowed:       http.StatusForbidden,
	CodeDPoPRequired:           http.StatusUnauthorized,
	CodeDPoPInvalid:            http.StatusUnauthorized,
	CodeRoomForbidden:          http.StatusForbidden,
	CodeUnknownAgent:           http.StatusNotFound,
	CodeRoomNotFound:           http.StatusNotFound,
	CodePayloadTooLarge:        http.StatusRequestEntityTooLarge,
	CodeRateLimited:            http.StatusTooManyRequests,
	CodeConfigError:            http.StatusInternalServerError,
	CodeJWTSigningError:        http.StatusInternalServerError,
	CodeLiveKitNotConfigured:   http.StatusNotImplemented,
	CodeAuthServiceError:       http.StatusBadGateway, // 401 when the service said 4xx; see Error.Status
	CodeLiveKitUnavailable:     http.StatusBadGateway,
	CodeStoreUnavailable:       http.StatusServiceUnavailable,
	CodeAuthServiceUnavailable: http.StatusServiceUnavailable,
	CodeNotFound:               http.StatusNotFound,
	CodeMethodNotAllowed:       http.StatusMethodNotAllowed,
	CodeInternal:               http.StatusInternalServerError,
}

// messages are the generic texts clients see; a handler may give a more
// specific one that names a field, never a credential.
var messages = map[string]string{
	CodeInvalidRequest:         "the request is malformed",
	CodeInvalidRoomName:        "room name must be agent_{agentId}_{timestamp}_{random} or demo_{identifier}",
	CodeMissingAuthHeader:      "no credential in the Authorization header or the api_key parameter",
	CodeInvalidAuthHeader:      "the Authorization header must be 'Bearer <credential>'",
	CodeUnauthorized:           "the credential is not valid",
	CodeTokenInvalid:           "the token is not valid",
	CodeTokenExpired:           "the token has expired",
	CodeTokenUsed:              "the token has already been used",
	CodeInsufficientScope:      "the credential lacks the scope this endpoint needs",
	CodeIPNotAllowed:           "the client address is not allowed for this credential",
	CodeOriginNotAllowed:       "this origin is not allowed",
	CodeDPoPRequired:           "this ticket is bound to a key: send a DPoP proof made with it in the DPoP header",
	CodeDPoPInvalid:            "the DPoP proof is not valid for this ticket and request; make a fresh one",
	CodeRoomForbidden:          "the room belongs to another organisation",
	CodeUnknownAgent:           "no such agent in your organisation",
	CodeRoomNotFound:           "no such room",
	CodePayloadTooLarge:        "the request body is over 16 KiB",
	CodeRateLimited:            "too many requests; retry after the time in Retry-After",
	CodeConfigError:            "the broker is misconfigured for this request",
	CodeJWTSigningError:        "the token could not be signed",
	CodeLiveKitNotConfigured:   "LiveKit is not configured on this broker",
	CodeAuthServiceError:       "the auth service refused or failed the request",
	CodeLiveKitUnavailable:     "LiveKit could not be reached; the token was not used, retry",
	CodeStoreUnavailable:       "the broker's store is unavailable; nothing was issued or used",
	CodeAuthServiceUnavailable: "the auth service is unreachable",
	CodeNotFound:               "no such endpoint",
	CodeMethodNotAllowed:       "method not allowed on this endpoint",
	CodeInternal:               "the broker could not complete this request",
}

// Error is an error answered to the client as {"error","message"}. Cause,
// if any, is logged and never sent.
type Error struct {
	Code    string
	Message string
	Status  int // 0: the table's status for Code
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Cause.Error()
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Cause }

// apiError returns a new *Error for code, with message or the generic one.
func apiError(code, message string) *Error {
	if message == "" {
		message = messages[code]
	}
	return &Error{Code: code, Message: message}
}

// wrapError returns a new *Error for code with the generic message and a cause.
func wrapError(code string, cause error) *Error {
	return &Error{Code: code, Message: messages[code], Cause: cause}
}

// body is the contract's error shape.
type body struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// classify maps any error a handler returns to the contract's code. Domain
// errors are matched with errors.Is against their packages' sentinels.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return apiError(CodeNotFound, "")
		case http.StatusMethodNotAllowed:
			return apiError(CodeMethodNotAllowed, "")
		case http.StatusRequestEntityTooLarge:
			return apiError(CodePayloadTooLarge, "")
		case http.StatusServiceUnavailable:
			return wrapError(CodeStoreUnavailable, err)
		}
		if he.Code >= 400 && he.Code < 500 {
			return &Error{Code: CodeInvalidRequest, Message: messages[CodeInvalidRequest], Status: he.Code}
		}
		return wrapError(CodeInternal, err)
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return wrapError(CodeStoreUnavailable, err)
	case errors.Is(err, token.ErrExpired):
		return wrapError(CodeTokenExpired, err)
	case errors.Is(err, token.ErrInvalid):
		return wrapError(CodeTokenInvalid, err)
	case errors.Is(err, auth.ErrServiceDenied):
		return &Error{Code: CodeAuthServiceError, Message: messages[CodeAuthServiceError], Status: http.StatusUnauthorized, Cause: err}
	case errors.Is(err, auth.ErrServiceFailed):
		return wrapError(CodeAuthServiceError, err)
	case errors.Is(err, auth.ErrServiceUnavailable):
		return wrapError(CodeAuthServiceUnavailable, err)
	case errors.Is(err, auth.ErrConfig):
		return wrapError(CodeConfigError, err)
	case errors.Is(err, auth.ErrSigning):
		return wrapError(CodeJWTSigningError, err)
	case errors.Is(err, auth.ErrIPNotAllowed):
		return wrapError(CodeIPNotAllowed, err)
	case errors.Is(err, auth.ErrInsufficientScope):
		return wrapError(CodeInsufficientScope, err)
	case errors.Is(err, auth.ErrUnauthorized):
		return wrapError(CodeUnauthorized, err)
	}
	return wrapError(CodeInternal, err)
}

// errorHandler is the echo HTTPErrorHandler: one place where errors become
// responses. Internal causes are logged; clients see code and message.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := classify(err)
	status := e.Status
	if status == 0 {
		status = statuses[e.Code]
	}
	if status >= 500 && e.Code != CodeLiveKitNotConfigured {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
			slog.String("event", "http.error"), slog.String("code", e.Code),
			slog.String("route", s.routeLabel(c)), slog.String("request_id", requestID(c)),
			slog.String("cause", causeText(e)))
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	code := e.Code
	if code == CodeInternal {
		// The contract's codes are fixed; a fault of the broker is its
		// generic 500, config_error (the log line above has the cause).
		code = CodeConfigError
	}
	c.JSON(status, body{Error: code, Message: e.Message})
}

func causeText(e *Error) string {
	if e.Cause == nil {
		return ""
	}
	return e.Cause.Error()
}
