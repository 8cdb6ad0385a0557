package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/httpapi"
)

// FuzzRewriteNetHTTPError: whatever bytes a write carries, a rewrite is a
// well-formed HTTP/1.1 answer with the same status, a JSON body in the
// contract's shape whose message is one of a fixed few (no byte of the
// input is echoed), and the connection closing after it.
func FuzzRewriteNetHTTPError(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 431 Request Header Fields Too Large" + netHTTPErrorHeaders + "431 Request Header Fields Too Large",
		"HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "400 Bad Request",
		"HTTP/1.1 400 Bad Request: malformed Host header" + netHTTPErrorHeaders + "400 Bad Request: malformed Host header",
		"HTTP/1.1 400 Bad Request: <b>" + netHTTPErrorHeaders + "400 Bad Request: <b>",
		"HTTP/1.1 501 Not Implemented" + netHTTPErrorHeaders + "Unsupported transfer encoding",
		"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + netHTTPErrorHeaders + "505 HTTP Version Not Supported: unsupported protocol version",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 400 Bad\nRequest" + netHTTPErrorHeaders + "400 Bad\nRequest",
	} {
		f.Add([]byte(s))
	}
	_, tooLarge := httpapi.HeadersTooLarge()
	messages := map[string]bool{tooLarge: true, "the request is not valid HTTP/1.1": true,
		"unsupported transfer encoding": true, "unsupported HTTP version": true}
	for d := range knownNetHTTPDetails {
		messages["the request is not valid HTTP/1.1: "+d] = true
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		out, ok := rewriteNetHTTPError(p)
		if !ok {
			return
		}
		if !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) || !bytes.Contains(p, []byte(netHTTPErrorHeaders)) {
			t.Fatalf("rewrote %q, which is not net/http's error answer", p)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("rewrite of %q does not parse: %v\n%q", p, err, out)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || int64(len(body)) != resp.ContentLength {
			t.Fatalf("body %q (%v), Content-Length %d", body, err, resp.ContentLength)
		}
		if string(p[9:12]) != resp.Status[:3] || !resp.Close || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("rewrite of %q: status %q, close %v, headers %v", p, resp.Status, resp.Close, resp.Header)
		}
		var e map[string]string
		if err := json.Unmarshal(body, &e); err != nil || len(e) != 2 || !messages[e["message"]] ||
			(e["error"] != "invalid_request" && e["error"] != "payload_too_large") {
			t.Fatalf("rewrite of %q: body %q (%v)", p, body, err)
		}
	})
}

// TestHandlerAnswersPassUntouched: through jsonErrorConn, what handlers
// write reaches the client byte for byte, even an answer made to look
// like net/http's own plain-text 431.
func TestHandlerAnswersPassUntouched(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const lookalike = "431 Request Header Fields Too Large"
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("x"), 64<<10))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		io.WriteString(w, lookalike)
	})}
	go srv.Serve(jsonErrorListener{l})
	t.Cleanup(func() { srv.Close() })
	for path, want := range map[string]string{"/": lookalike, "/big": strings.Repeat("x", 64<<10)} {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("%s: body %.80q, want %.80q", path, body, want)
		}
		if path == "/" && (resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8") {
			t.Fatalf("the handler's own 431 was changed: %d %v", resp.StatusCode, resp.Header)
		}
	}
}
