package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// Forwarder is a loopback HTTP server that passes every request on to a
// target set later. It gives a URL to a process that must start before
// the server it calls (livekit-server's webhooks, before the broker they
// reach) without reserving a port for that server: a port reserved and
// freed can be taken, by the process started in between, before the
// server binds it. Until the target is set it answers 503.
type Forwarder struct {
	URL   string
	proxy atomic.Pointer[httputil.ReverseProxy]
}

// NewForwarder starts a Forwarder and stops it at cleanup.
func NewForwarder(t testing.TB) *Forwarder {
	t.Helper()
	f := &Forwarder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := f.proxy.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		http.Error(w, "no target yet", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// To sends every later request to target (scheme://host:port).
func (f *Forwarder) To(t testing.TB, target string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f.proxy.Store(httputil.NewSingleHostReverseProxy(u))
}
