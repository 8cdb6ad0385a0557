package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// MaxBodyBytes bounds every request body (contract §5: 413 over 16 KiB).
const MaxBodyBytes = 16 << 10

// MaxCredentialLength bounds a credential from the header or the query.
const MaxCredentialLength = 8 << 10

// readBody reads the whole body, at most MaxBodyBytes, once: the delegated
// auth service signs the same bytes the handler then decodes. A body that
// is not empty must be declared JSON (see jsonContentType), or it is 400
// invalid_request before anything reads it: a cross-site page can send a
// text/plain, form or multipart POST without a CORS preflight, and
// application/json needs one.
func readBody(c echo.Context) ([]byte, error) {
	st := stateOf(c)
	if st.body != nil {
		return st.body, nil
	}
	r := c.Request()
	if r.ContentLength > MaxBodyBytes {
		return nil, apiError(CodePayloadTooLarge, "")
	}
	var data []byte
	var err error
	if r.ContentLength > 0 {
		// Its length is declared and within bounds, and net/http's server
		// reads no more of it than declared (a shorter one is an error):
		// read exactly that, into one buffer of its size. A length of 0 is
		// also what http.NewRequest gives a body of unknown length.
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apiError(CodePayloadTooLarge, "")
		}
		return nil, newError(CodeInvalidRequest, "the request body could not be read", err)
	}
	if data == nil {
		data = []byte{}
	}
	if len(data) > 0 && !jsonContentType(r) {
		return nil, apiError(CodeInvalidRequest, "send the body with 'Content-Type: application/json'")
	}
	st.body = data
	return data, nil
}

// jsonContentType reports whether r declares its body as JSON: one
// Content-Type header, of media type application/json (in any case, with
// any parameters), and a charset, if it names one, of utf-8: the only
// encoding JSON has (RFC 8259 §8.1).
func jsonContentType(r *http.Request) bool {
	vals := r.Header.Values(echo.HeaderContentType)
	if len(vals) != 1 {
		return false
	}
	// What ParseMediaType would find, without its map. The length first:
	// EqualFold folds Unicode, so "application/j\u017fon" (long s) and
	// other non-ASCII spellings, which ParseMediaType refuses, would match.
	if len(vals[0]) == len(echo.MIMEApplicationJSON) && strings.EqualFold(vals[0], echo.MIMEApplicationJSON) {
		return true
	}
	mt, params, err := mime.ParseMediaType(vals[0])
	if err != nil || mt != echo.MIMEApplicationJSON {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

// decodeJSON decodes one JSON object from data into v, after strictjson.Check's
// strict rules (valid UTF-8, no duplicate or case-variant keys at any depth,
// field names matched exactly). With strict set, unknown fields are refused
// too. The message names the field at fault and never repeats the input.
func decodeJSON(data []byte, v any, strict bool) error {
	if err := checkJSONObject(data, reflect.TypeOf(v), strict); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return apiError(CodeInvalidRequest, fmt.Sprintf("field %q must be %s", te.Field, jsonKind(te.Type.Kind().String())))
		case errors.As(err, &se):
			return apiError(CodeInvalidRequest, fmt.Sprintf("malformed JSON at byte %d", se.Offset))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return apiError(CodeInvalidRequest, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return apiError(CodeInvalidRequest, "malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiError(CodeInvalidRequest, "unexpected data after the JSON object")
	}
	return nil
}

// checkJSONObject refuses, as invalid_request naming what is wrong, a body
// that is empty, is not a JSON object, or breaks strictjson.Check's rules for t.
func checkJSONObject(data []byte, t reflect.Type, strict bool) error {
	_, _, err := checkJSONMembers(data, t, strict)
	return err
}

// checkJSONMembers is checkJSONObject that also returns the object's
// members as strictjson.CheckMembers does (n is -1 when there are more
// than it returns).
func checkJSONMembers(data []byte, t reflect.Type, strict bool) (members [strictjson.MaxMembers]strictjson.Member, n int, err error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return members, -1, apiError(CodeInvalidRequest, "a JSON body is required")
	}
	if trimmed[0] != '{' {
		return members, -1, apiError(CodeInvalidRequest, "the body must be a JSON object")
	}
	members, n, err = strictjson.CheckMembers(data, t, strict)
	if err != nil {
		return members, -1, newError(CodeInvalidRequest, err.Error(), err)
	}
	return members, n, nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "a number"
}

// credential extracts the caller's credential: the Authorization header
// first; if it is absent or malformed, the api_key query parameter (the
// precedence of Sayna's authentication docs). A malformed header with no
// api_key is
// invalid_auth_header; nothing at all is missing_auth_header.
func credential(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	headerPresent := len(values) > 0
	if len(values) == 1 {
		if cred, ok := bearer(values[0]); ok {
			return cred, nil
		}
	}
	if q := r.URL.Query()["api_key"]; len(q) == 1 && q[0] != "" && len(q[0]) <= MaxCredentialLength && printable(q[0]) {
		return q[0], nil
	} else if len(q) > 0 {
		return "", apiError(CodeInvalidAuthHeader, "the api_key parameter must appear once with a credential")
	}
	if headerPresent {
		return "", apiError(CodeInvalidAuthHeader, "")
	}
	return "", apiError(CodeMissingAuthHeader, "")
}

// bearer parses "Bearer <credential>" (scheme case-insensitive, one space,
// a non-empty credential of printable ASCII without spaces).
func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	cred := h[len(prefix):]
	if len(cred) > MaxCredentialLength || !printable(cred) {
		return "", false
	}
	return cred, true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// ClientIP resolves the client address: the socket peer, unless the peer is
// a trusted proxy, and then the right-most X-Forwarded-For entry that is not
// itself trusted. A spoofed header from an untrusted peer changes nothing.
type ClientIP struct {
	Trusted []netip.Prefix
}

func (c ClientIP) trusted(a netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the client address of r, IPv4-mapped addresses as IPv4 and
// without an IPv6 zone (an interface name of one host, never part of who
// the client is); the zero Addr if the peer address does not parse (never
// the case with net/http).
func (c ClientIP) Of(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap().WithZone("")
	if len(c.Trusted) == 0 || !c.trusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// Junk in the chain: nothing left of it can be believed.
				return client
			}
			client = a.Unmap().WithZone("")
			if !c.trusted(client) {
				return client
			}
		}
	}
	return client
}
