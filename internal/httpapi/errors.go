package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Code is an error code a handler raises. What the client sees is the
// code's row in errorTable: its status, its message (unless the handler
// gives one) and the contract's code it goes out as.
type Code string

// Error codes: the contract's (§5), and a few of the broker's own, each
// sent as the contract's code its row names.
const (
	CodeInvalidRequest         Code = "invalid_request"
	CodeInvalidRoomName        Code = "invalid_room_name"
	CodeMissingAuthHeader      Code = "missing_auth_header"
	CodeInvalidAuthHeader      Code = "invalid_auth_header"
	CodeUnauthorized           Code = "unauthorized"
	CodeTokenInvalid           Code = "token_invalid"
	CodeTokenExpired           Code = "token_expired"
	CodeTokenUsed              Code = "token_used"
	CodeInsufficientScope      Code = "insufficient_scope"
	CodeIPNotAllowed           Code = "ip_not_allowed"
	CodeOriginNotAllowed       Code = "origin_not_allowed"
	CodeDPoPRequired           Code = "dpop_required"
	CodeDPoPInvalid            Code = "dpop_invalid"
	CodeRoomForbidden          Code = "room_forbidden"
	CodeUnknownAgent           Code = "unknown_agent"
	CodeRoomNotFound           Code = "room_not_found"
	CodeNotFound               Code = "not_found"
	CodePayloadTooLarge        Code = "payload_too_large"
	CodeRateLimited            Code = "rate_limited"
	CodeConfigError            Code = "config_error"
	CodeJWTSigningError        Code = "jwt_signing_error"
	CodeLiveKitNotConfigured   Code = "livekit_not_configured"
	CodeAuthServiceError       Code = "auth_service_error"
	CodeLiveKitUnavailable     Code = "livekit_unavailable"
	CodeStoreUnavailable       Code = "store_unavailable"
	CodeAuthServiceUnavailable Code = "auth_service_unavailable"
	CodeConflict               Code = "conflict"
	CodeRegistryReadOnly       Code = "registry_read_only"
	CodeRegistryUnavailable    Code = "registry_unavailable"

	// CodeMethodNotAllowed is echo's 405 for a known path; the contract
	// has no code for it, and it goes out as it is.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeInternal classifies a fault of the broker itself (a panic, an
	// impossible state, an error no row claims). It goes out as
	// config_error, the contract's code for a 500 that is not about
	// signing, with its own message; the log line has the cause.
	CodeInternal Code = "internal_error"

	// codeHeadersTooLarge: the request headers are over MaxHeaderBytes.
	codeHeadersTooLarge Code = "headers_too_large"
	// codeAuthServiceDenied: the auth service answered 4xx.
	codeAuthServiceDenied Code = "auth_service_denied"
	// codeRequestRefused: echo refused the request with a 4xx no other
	// row claims; it keeps echo's status.
	codeRequestRefused Code = "request_refused"
	// codeNoTenants: /readyz before any tenants are loaded.
	codeNoTenants Code = "no_tenants"
)

// errorRow is one row of the error table.
type errorRow struct {
	code Code
	// status is the answer's status (0: echo's own, for codeRequestRefused).
	status int
	// message is the generic text clients see; a handler may give a more
	// specific one that names a field, never a credential or a value.
	message string
	// wire says which of the contract's codes (§5) goes out.
	wire wire
	// causes are the errors classify maps to this code.
	causes []cause
	// quiet rows are not logged even as 5xx: they are a deployment's
	// choice, not a failure.
	quiet bool
}

// wire is how a row's code stands to the contract's codes.
type wire struct {
	as      Code // sent as this contract code; "" sends the row's own
	outside bool // the row's own code is sent, and the contract lacks it
}

var (
	// inContract: the code is the contract's, and goes out as it is.
	inContract = wire{}
	// outsideContract: the code is not the contract's, and goes out as it
	// is (a row's comment says why).
	outsideContract = wire{outside: true}
)

// sentAs: the code is the broker's own and goes out as the contract's code c.
func sentAs(c Code) wire { return wire{as: c} }

// cause is an error classified as a row's code: a sentinel matched with
// errors.Is, or a status of echo's own *echo.HTTPError (routing, body
// limit). Sentinels are not looked for inside an echo error.
type cause struct {
	sentinel error
	echo     int
}

// anyClientError stands for every 4xx status of echo's that no row names.
const anyClientError = -1

func is(sentinels ...error) []cause {
	cs := make([]cause, len(sentinels))
	for i, s := range sentinels {
		cs[i] = cause{sentinel: s}
	}
	return cs
}

func echoStatus(status int) cause { return cause{echo: status} }

// errorTable is the one table from error code to answer: status, message
// and the contract's code, and which errors classify maps to it. Rows are
// in the contract's order, then the broker's own; classify takes the first
// row with a matching cause (an error matches one cause in practice: the
// order decides only that echo's specific statuses come before
// anyClientError).
//
// Adding a code is adding its constant above and its row here.
var errorTable = []errorRow{
	{code: CodeInvalidRequest, status: http.StatusBadRequest, wire: inContract,
		message: "the request is malformed"},
	{code: CodeInvalidRoomName, status: http.StatusBadRequest, wire: inContract,
		message: "room name must be agent_{agentId}_{timestamp}_{random} or demo_{identifier}"},
	{code: CodeMissingAuthHeader, status: http.StatusUnauthorized, wire: inContract,
		message: "no credential in the Authorization header or the api_key parameter"},
	{code: CodeInvalidAuthHeader, status: http.StatusUnauthorized, wire: inContract,
		message: "the Authorization header must be the word Bearer, a space and the credential"},
	{code: CodeUnauthorized, status: http.StatusUnauthorized, wire: inContract,
		message: "the credential is not valid", causes: is(auth.ErrUnauthorized)},
	{code: CodeTokenInvalid, status: http.StatusUnauthorized, wire: inContract,
		message: "the token is not valid", causes: is(token.ErrInvalid)},
	{code: CodeTokenExpired, status: http.StatusUnauthorized, wire: inContract,
		message: "the token has expired", causes: is(token.ErrExpired)},
	{code: CodeTokenUsed, status: http.StatusUnauthorized, wire: inContract,
		message: "the token has already been used"},
	{code: CodeInsufficientScope, status: http.StatusForbidden, wire: inContract,
		message: "the credential lacks the scope this endpoint needs", causes: is(auth.ErrInsufficientScope)},
	{code: CodeIPNotAllowed, status: http.StatusForbidden, wire: inContract,
		message: "the client address is not allowed for this credential", causes: is(auth.ErrIPNotAllowed)},
	{code: CodeOriginNotAllowed, status: http.StatusForbidden, wire: inContract,
		message: "this origin is not allowed"},
	{code: CodeDPoPRequired, status: http.StatusUnauthorized, wire: inContract,
		message: "this ticket is bound to a key: send a DPoP proof made with it in the DPoP header"},
	{code: CodeDPoPInvalid, status: http.StatusUnauthorized, wire: inContract,
		message: "the DPoP proof is not valid for this ticket and request; make a fresh one"},
	// Routing's 404: the contract's not_found, for an endpoint.
	{code: CodeNotFound, status: http.StatusNotFound, wire: inContract,
		message: "no such endpoint", causes: []cause{echoStatus(http.StatusNotFound)}},
	{code: CodeRoomForbidden, status: http.StatusForbidden, wire: inContract,
		message: "the room belongs to another organisation"},
	{code: CodeUnknownAgent, status: http.StatusNotFound, wire: inContract,
		message: "no such agent in your organisation"},
	{code: CodeRoomNotFound, status: http.StatusNotFound, wire: inContract,
		message: "no such room", causes: is(livekit.ErrNotFound)},
	{code: CodePayloadTooLarge, status: http.StatusRequestEntityTooLarge, wire: inContract,
		message: "the request body is over 16 KiB", causes: []cause{echoStatus(http.StatusRequestEntityTooLarge)}},
	{code: CodeRateLimited, status: http.StatusTooManyRequests, wire: inContract,
		message: "too many requests; retry after the time in Retry-After"},
	{code: CodeConfigError, status: http.StatusInternalServerError, wire: inContract,
		message: "the broker is misconfigured for this request", causes: is(auth.ErrConfig)},
	{code: CodeJWTSigningError, status: http.StatusInternalServerError, wire: inContract,
		message: "the token could not be signed", causes: is(auth.ErrSigning)},
	{code: CodeLiveKitNotConfigured, status: http.StatusNotImplemented, wire: inContract, quiet: true,
		message: "LiveKit is not configured on this broker: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET"},
	{code: CodeAuthServiceError, status: http.StatusBadGateway, wire: inContract,
		message: "the auth service refused or failed the request", causes: is(auth.ErrServiceFailed)},
	{code: CodeLiveKitUnavailable, status: http.StatusBadGateway, wire: inContract,
		message: "LiveKit could not be reached; the token was not used, retry", causes: is(livekit.ErrUnavailable)},
	{code: CodeStoreUnavailable, status: http.StatusServiceUnavailable, wire: inContract,
		message: "the broker's store is unavailable; nothing was issued or used",
		causes:  append(is(store.ErrUnavailable), echoStatus(http.StatusServiceUnavailable))},
	{code: CodeAuthServiceUnavailable, status: http.StatusServiceUnavailable, wire: inContract,
		message: "the auth service is unreachable", causes: is(auth.ErrServiceUnavailable)},
	// The admin API's (adminError maps the registry's errors to them).
	{code: CodeConflict, status: http.StatusConflict, wire: inContract,
		message: "the id exists already"},
	{code: CodeRegistryReadOnly, status: http.StatusConflict, wire: inContract,
		message: "the tenants come from a tenants file (BROKER_CONFIG) and are read-only here: change the file instead"},
	{code: CodeRegistryUnavailable, status: http.StatusServiceUnavailable, wire: inContract,
		message: "the tenant registry is unavailable; try again shortly"},

	// The broker's own codes.
	{code: codeHeadersTooLarge, status: http.StatusRequestHeaderFieldsTooLarge, wire: sentAs(CodePayloadTooLarge),
		message: "the request headers are over 16 KiB"},
	{code: codeAuthServiceDenied, status: http.StatusUnauthorized, wire: sentAs(CodeAuthServiceError),
		message: "the auth service refused or failed the request", causes: is(auth.ErrServiceDenied)},
	// The contract has no code for a method a known path does not serve.
	{code: CodeMethodNotAllowed, status: http.StatusMethodNotAllowed, wire: outsideContract,
		message: "method not allowed on this endpoint", causes: []cause{echoStatus(http.StatusMethodNotAllowed)}},
	{code: codeRequestRefused, status: 0, wire: sentAs(CodeInvalidRequest),
		message: "the request is malformed", causes: []cause{echoStatus(anyClientError)}},
	// /readyz only: not ready is 503 there, config_error the contract's word.
	{code: codeNoTenants, status: http.StatusServiceUnavailable, wire: sentAs(CodeConfigError),
		message: "no tenants loaded"},
	{code: CodeInternal, status: http.StatusInternalServerError, wire: sentAs(CodeConfigError),
		message: "the broker could not complete this request"},
}

// rows indexes errorTable by code.
var rows = func() map[Code]*errorRow {
	m := make(map[Code]*errorRow, len(errorTable))
	for i := range errorTable {
		r := &errorTable[i]
		if m[r.code] != nil {
			panic("httpapi: error code " + string(r.code) + " twice in errorTable")
		}
		m[r.code] = r
	}
	return m
}()

// row returns code's row; a code without one is answered as CodeInternal.
func row(code Code) *errorRow {
	if r := rows[code]; r != nil {
		return r
	}
	return rows[CodeInternal]
}

// HeadersTooLarge is the answer to request headers over MaxHeaderBytes, as
// the contract's code and its message: for the 431 net/http writes itself,
// past what it reads, which internal/app answers in the same words.
func HeadersTooLarge() (Code, string) {
	r := row(codeHeadersTooLarge)
	return r.wireCode(), r.message
}

// wireCode is the contract's code the row's code goes out as.
func (r *errorRow) wireCode() Code {
	if r.wire.as != "" {
		return r.wire.as
	}
	return r.code
}

// Error is an error answered to the client as {"error","message"}. Cause,
// if any, is logged and never sent.
type Error struct {
	Code    Code
	Message string
	Cause   error
	// status overrides the row's status: classify sets it for echo's own
	// 4xx (codeRequestRefused); nothing else does.
	status int
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return string(e.Code) + ": " + e.Cause.Error()
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Cause }

// answerStatus is the status e is answered with: its row's, unless
// classify gave it echo's.
func (e *Error) answerStatus() int {
	if e.status != 0 {
		return e.status
	}
	return row(e.Code).status
}

// apiError returns a new *Error for code, with message or the generic one.
func apiError(code Code, message string) *Error {
	return newError(code, message, nil)
}

// wrapError returns a new *Error for code with the generic message and a cause.
func wrapError(code Code, cause error) *Error {
	return newError(code, "", cause)
}

// newError returns a new *Error for code, with message (or the generic
// one when it is empty) and cause.
func newError(code Code, message string, cause error) *Error {
	if message == "" {
		message = row(code).message
	}
	return &Error{Code: code, Message: message, Cause: cause}
}

// body is the contract's error shape.
type body struct {
	Error   Code   `json:"error"`
	Message string `json:"message"`
}

// classify maps any error a handler returns to its code through the
// table's causes; an error no row claims is CodeInternal.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var he *echo.HTTPError
	fromEcho := errors.As(err, &he)
	for i := range errorTable {
		r := &errorTable[i]
		for _, c := range r.causes {
			switch {
			case fromEcho && c.sentinel == nil && c.echo == he.Code:
				return wrapError(r.code, err)
			case fromEcho && c.echo == anyClientError && he.Code >= 400 && he.Code < 500:
				e := wrapError(r.code, err)
				e.status = he.Code
				return e
			case !fromEcho && c.sentinel != nil && errors.Is(err, c.sentinel):
				return wrapError(r.code, err)
			}
		}
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
	if e.answerStatus() >= 500 && !row(e.Code).quiet {
		s.logger(c).LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
			slog.String("event", "http.error"), slog.String("code", string(e.Code)),
			slog.String("route", s.routeLabel(c)), slog.String("cause", causeText(e)))
	}
	writeError(c, e)
}

// writeError answers e by its row: status, the contract's code and e's
// message, in the contract's shape (no body to a HEAD).
func writeError(c echo.Context, e *Error) error {
	status := e.answerStatus()
	if c.Request().Method == http.MethodHead {
		return c.NoContent(status)
	}
	return c.JSON(status, body{Error: row(e.Code).wireCode(), Message: e.Message})
}

func causeText(e *Error) string {
	if e.Cause == nil {
		return ""
	}
	return e.Cause.Error()
}
