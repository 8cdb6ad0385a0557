package app

import (
	"bytes"
	"net"
	"net/http"
	"strconv"

	"github.com/voicebroker/voicebroker/internal/httpapi"
)

// net/http answers a request it cannot read (headers past
// http.Server.MaxHeaderBytes plus its 4 KiB of slack, a malformed request
// line or header, a bad Host, an unknown transfer coding, an unsupported
// protocol version) before any handler runs, by writing a plain-text
// answer straight to the connection:
//
//	HTTP/1.1 <code> <text>[: <detail>]\r\n<netHTTPErrorHeaders><body>
//
// jsonErrorListener's connections recognise exactly that write and send
// the same status in the contract's error shape instead, so that no bad
// input, however bad, gets an answer a client cannot parse.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorListener wraps a listener's connections in jsonErrorConn.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

// jsonErrorConn rewrites net/http's own plain-text error answer; every
// other write passes through untouched. A handler's answer can never take
// that answer's shape: the ResponseWriter writes its header fields in
// sorted order (Connection before Content-Type) and always with a Date or
// a Content-Length, where net/http's error has Content-Type first and no
// other field.
type jsonErrorConn struct{ net.Conn }

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if out, ok := rewriteNetHTTPError(p); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite is what net/http calls after its 431, to let the client read
// the answer before the connection closes; without it, it would only
// close.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// knownNetHTTPDetails are the details net/http gives a 400.
var knownNetHTTPDetails = map[string]bool{
	"missing required Host header": true, "malformed Host header": true,
	"invalid header name": true, "invalid header value": true,
}

// rewriteNetHTTPError returns the contract-shaped answer for p when p is
// exactly one of net/http's plain-text error answers. Its status line is
// made from the status code alone.
func rewriteNetHTTPError(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	// The status line ends at the first CR, where net/http's fields must
	// begin: every other answer is passed over after a few bytes.
	end := bytes.IndexByte(rest, '\r')
	if end < 4 || rest[3] != ' ' || !bytes.HasPrefix(rest[end:], []byte(netHTTPErrorHeaders)) {
		return nil, false
	}
	statusLine, body := rest[:end], rest[end+len(netHTTPErrorHeaders):]
	if bytes.IndexByte(statusLine, '\n') >= 0 {
		return nil, false
	}
	status, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	// The body repeats the status line (or, for 501, names the coding):
	// anything else is not net/http's answer.
	if !bytes.Equal(body, statusLine) && !(status == 501 && string(body) == "Unsupported transfer encoding") {
		return nil, false
	}
	code, message := httpapi.CodeInvalidRequest, "the request is not valid HTTP/1.1"
	switch status {
	case 431:
		code, message = httpapi.HeadersTooLarge()
	case 501:
		message = "unsupported transfer encoding"
	case 505:
		message = "unsupported HTTP version"
	default:
		// Only net/http's own fixed phrases are repeated, so that no byte
		// of the request could ever be echoed, whatever a later Go sends.
		if _, detail, ok := bytes.Cut(statusLine, []byte(": ")); ok && knownNetHTTPDetails[string(detail)] {
			message += ": " + string(detail)
		}
	}
	jsonBody := `{"error":` + strconv.Quote(string(code)) + `,"message":` + strconv.Quote(message) + "}\n"
	out := make([]byte, 0, 256)
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(jsonBody)), 10)
	out = append(out, "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n\r\n"...)
	return append(out, jsonBody...), true
}
