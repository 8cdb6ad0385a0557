package httpapi

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/compactjson"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// writeMinted answers 201 with the mint's body, byte for byte what
// c.JSON(http.StatusCreated, mintResponse{...}) writes (encoding/json, HTML
// escaping, a final newline), without reflection. A request with a query
// string, or an Echo in debug mode, goes through c.JSON, which indents for
// ?pretty and in debug mode.
func writeMinted(c echo.Context, r mintResponse) error {
	if c.Request().URL.RawQuery != "" || c.Echo().Debug {
		return c.JSON(http.StatusCreated, r)
	}
	b := make([]byte, 0, len(r.Token)+len(r.Server)+64)
	b = append(b, `{"token":`...)
	b = token.AppendJSONString(b, r.Token)
	b = append(b, `,"server":`...)
	b = token.AppendJSONString(b, r.Server)
	b = append(b, `,"expiresIn":`...)
	b = strconv.AppendInt(b, int64(r.ExpiresIn), 10)
	b = append(b, "}\n"...)
	return writeJSONBytes(c, http.StatusCreated, b)
}

// writeJSONBytes answers status with b, a JSON body, and the Content-Type
// c.JSON sets, unless the response has one already. The header's value
// slice is shared by every answer (header values are never written in
// place), so setting it costs no allocation.
func writeJSONBytes(c echo.Context, status int, b []byte) error {
	h := c.Response().Header()
	if _, ok := h[echo.HeaderContentType]; !ok {
		h[echo.HeaderContentType] = jsonContentTypeValue
	}
	return c.Blob(status, echo.MIMEApplicationJSON, b)
}

// jsonContentTypeValue is the Content-Type value c.JSON sets.
var jsonContentTypeValue = []string{echo.MIMEApplicationJSON}

// writeRedeemed answers 200 with redeem's body, byte for byte what
// c.JSON(http.StatusOK, r) writes, without reflection. Metadata goes out
// as it is when it is exactly what encoding/json writes for it (a ticket's
// claims carry it compacted, so it is unless it holds a character
// json.Marshal escapes: <, >, &, U+2028 or U+2029); anything else, a query
// string, or an Echo in debug mode goes through c.JSON (which answers null
// for no metadata, and refuses metadata that is empty but not nil).
func writeRedeemed(c echo.Context, r redeemResponse) error {
	if c.Request().URL.RawQuery != "" || c.Echo().Debug || r.Metadata != nil && !plainCompactJSON(r.Metadata) {
		return c.JSON(http.StatusOK, r)
	}
	b := make([]byte, 0, len(r.Org)+len(r.Agent)+len(r.Channel)+len(r.Identity)+len(r.Metadata)+len(r.Origin)+128)
	b = append(b, `{"org":`...)
	b = token.AppendJSONString(b, r.Org)
	b = append(b, `,"agent":`...)
	b = token.AppendJSONString(b, r.Agent)
	b = append(b, `,"channel":`...)
	b = token.AppendJSONString(b, r.Channel)
	b = append(b, `,"identity":`...)
	b = token.AppendJSONString(b, r.Identity)
	b = append(b, `,"metadata":`...)
	if r.Metadata == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Metadata...)
	}
	if r.Origin != "" {
		b = append(b, `,"origin":`...)
		b = token.AppendJSONString(b, r.Origin)
	}
	if r.Cnf != nil {
		b = append(b, `,"cnf":{"jkt":`...)
		b = token.AppendJSONString(b, r.Cnf.JKT)
		b = append(b, '}')
	}
	b = append(b, "}\n"...)
	return writeJSONBytes(c, http.StatusOK, b)
}

// plainCompactJSON reports whether raw is valid JSON and what encoding/json
// writes for it as a json.RawMessage (compacted, HTML characters
// escaped), so that it can go out as it is. The caller falls back to
// encoding/json on false.
func plainCompactJSON(raw []byte) bool {
	var scratch [MaxMetadataBytes]byte // a ticket's metadata fits
	out, err := compactjson.Append(scratch[:0], raw, true)
	return err == nil && bytes.Equal(out, raw)
}
