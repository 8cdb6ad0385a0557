package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
)

// TestRequestDeadline: every request's context ends at the configured
// request deadline, which leaves a store call and the reply inside the
// server's write timeout; the handler's upstream calls inherit it.
func TestRequestDeadline(t *testing.T) {
	env, err := config.LoadEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var got time.Time
	var ok bool
	h := withDeadline(env.RequestTimeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok = r.Context().Deadline()
	}))
	start := time.Now()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/token", nil))
	if !ok {
		t.Fatal("the request context has no deadline")
	}
	if d := got.Sub(start); d < env.RequestTimeout || d > env.RequestTimeout+time.Second {
		t.Fatalf("deadline in %s, want %s", d, env.RequestTimeout)
	}
	if env.RequestTimeout+env.StoreTimeout+config.ReplyTime > config.WriteTimeout {
		t.Fatalf("request deadline %s + store %s + reply %s passes the write timeout %s",
			env.RequestTimeout, env.StoreTimeout, config.ReplyTime, config.WriteTimeout)
	}
}

// TestServerUsesWriteTimeout: the listener's write timeout is the one the
// deadlines were ordered against.
func TestServerUsesWriteTimeout(t *testing.T) {
	env, err := config.LoadEnv(func(k string) string { return map[string]string{"BROKER_ADDR": "127.0.0.1:0"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(env, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		defer a.Close()
		if err = a.Listen(); err == nil {
			defer a.listener.Close()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if a.server.WriteTimeout != config.WriteTimeout {
		t.Fatalf("server write timeout %s, want %s", a.server.WriteTimeout, config.WriteTimeout)
	}
}

// TestMetricsServerLimits: the /metrics listener of BROKER_METRICS_ADDR has
// the main listener's deadlines and header limit; a bind failure leaves
// nothing bound.
func TestMetricsServerLimits(t *testing.T) {
	env, err := config.LoadEnv(func(k string) string {
		return map[string]string{"BROKER_ADDR": "127.0.0.1:0", "BROKER_METRICS_ADDR": "127.0.0.1:0"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(env, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	defer a.listener.Close()
	defer a.metricsListener.Close()
	m, s := a.metricsServer, a.server
	if m == nil || m.WriteTimeout != config.WriteTimeout || m.ReadHeaderTimeout != s.ReadHeaderTimeout || m.ReadTimeout != s.ReadTimeout ||
		m.IdleTimeout != s.IdleTimeout || m.MaxHeaderBytes != s.MaxHeaderBytes {
		t.Fatalf("metrics server %+v, main server %+v", m, s)
	}

	// The metrics address taken: Listen fails naming it and releases the
	// main address it had bound.
	held := a.metricsListener.Addr().String()
	env2, err := config.LoadEnv(func(k string) string {
		return map[string]string{"BROKER_ADDR": "127.0.0.1:0", "BROKER_METRICS_ADDR": held}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(env2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Listen(); err == nil || !strings.HasPrefix(err.Error(), "BROKER_METRICS_ADDR "+held+": ") {
		t.Fatalf("Listen: %v", err)
	}
	if b.listener != nil || b.metricsListener != nil {
		t.Fatal("a listener is left bound after the failure")
	}
}
