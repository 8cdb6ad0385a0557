package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
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
	b = appendJSONString(b, r.Token)
	b = append(b, `,"server":`...)
	b = appendJSONString(b, r.Server)
	b = append(b, `,"expiresIn":`...)
	b = strconv.AppendInt(b, int64(r.ExpiresIn), 10)
	b = append(b, "}\n"...)
	h := c.Response().Header()
	if _, ok := h[echo.HeaderContentType]; !ok {
		h[echo.HeaderContentType] = jsonContentTypeValue
	}
	return c.Blob(http.StatusCreated, echo.MIMEApplicationJSON, b)
}

// jsonContentTypeValue is the Content-Type value c.JSON sets; header
// values are never written in place, so every answer can share it.
var jsonContentTypeValue = []string{echo.MIMEApplicationJSON}

// appendJSONString appends s as encoding/json writes it: plain printable
// ASCII other than ", \, <, > and & as it is; anything else through
// json.Marshal, which escapes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
