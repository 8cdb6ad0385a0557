package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
