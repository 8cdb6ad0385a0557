package app

import (
	"context"
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

type ctxKey struct{}

// TestDeadlineContext: the request context made on demand answers as
// context.WithDeadline's would: its deadline, Err before and after it,
// the parent's cancellation and values, a Done that closes at the
// deadline, contexts derived from it ending with it, and no timer made
// while nothing waits on Done.
func TestDeadlineContext(t *testing.T) {
	wait := func(t *testing.T, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatal("Done never closed")
		}
	}
	parent := context.WithValue(context.Background(), ctxKey{}, "v")

	t.Run("before the deadline", func(t *testing.T) {
		d := time.Now().Add(time.Hour)
		c := &deadlineCtx{Context: parent, deadline: d}
		if got, ok := c.Deadline(); !ok || !got.Equal(d) {
			t.Fatalf("Deadline %v %v", got, ok)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("Err %v", err)
		}
		if c.Value(ctxKey{}) != "v" {
			t.Fatal("the parent's value is lost")
		}
		if c.ctx != nil {
			t.Fatal("a real context was made though nothing asked for Done")
		}
		c.release()
	})
	t.Run("past the deadline, without Done", func(t *testing.T) {
		c := &deadlineCtx{Context: parent, deadline: time.Now().Add(-time.Millisecond)}
		if err := c.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err %v, want DeadlineExceeded", err)
		}
		wait(t, c.Done())
		if err := c.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err after Done %v", err)
		}
	})
	t.Run("Done closes at the deadline", func(t *testing.T) {
		c := &deadlineCtx{Context: parent, deadline: time.Now().Add(5 * time.Millisecond)}
		wait(t, c.Done())
		if err := c.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err %v", err)
		}
		if c.Value(ctxKey{}) != "v" {
			t.Fatal("the parent's value is lost")
		}
	})
	t.Run("the parent's cancellation", func(t *testing.T) {
		p, cancel := context.WithCancel(parent)
		c := &deadlineCtx{Context: p, deadline: time.Now().Add(time.Hour)}
		cancel()
		if err := c.Err(); err != context.Canceled {
			t.Fatalf("Err %v, want Canceled", err)
		}
		wait(t, c.Done())
	})
	t.Run("an earlier parent deadline", func(t *testing.T) {
		p, cancel := context.WithTimeout(parent, time.Minute)
		defer cancel()
		c := &deadlineCtx{Context: p, deadline: time.Now().Add(time.Hour)}
		pd, _ := p.Deadline()
		if got, _ := c.Deadline(); !got.Equal(pd) {
			t.Fatalf("Deadline %v, want the parent's %v", got, pd)
		}
	})
	t.Run("derived contexts end with it", func(t *testing.T) {
		c := &deadlineCtx{Context: parent, deadline: time.Now().Add(5 * time.Millisecond)}
		child, cancel := context.WithTimeout(c, time.Hour)
		defer cancel()
		wait(t, child.Done())
		if err := child.Err(); err != context.DeadlineExceeded {
			t.Fatalf("child Err %v", err)
		}
	})
	t.Run("released when the request ends", func(t *testing.T) {
		var done <-chan struct{}
		h := withDeadline(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			done = r.Context().Done()
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/token", nil))
		wait(t, done)
	})
	t.Run("ended after release, though nothing asked for Done", func(t *testing.T) {
		var ctx context.Context
		h := withDeadline(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx = r.Context()
			if err := ctx.Err(); err != nil {
				t.Errorf("Err %v during the request", err)
			}
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/token", nil))
		if err := ctx.Err(); err != context.Canceled {
			t.Fatalf("Err after the request %v, want Canceled (as context.WithTimeout's cancel)", err)
		}
		select {
		case <-ctx.Done():
		default:
			t.Fatal("Done after the request is not closed")
		}
		if cause := context.Cause(ctx); cause != context.Canceled {
			t.Fatalf("context.Cause after the request %v, want Canceled", cause)
		}
	})
	t.Run("CancelSignal is the parent's cancellation, and makes no timer", func(t *testing.T) {
		p, cancel := context.WithCancel(parent)
		c := &deadlineCtx{Context: p, deadline: time.Now().Add(-time.Millisecond)}
		sig := c.CancelSignal()
		if c.ctx != nil {
			t.Fatal("CancelSignal made the real context (and its timer)")
		}
		select {
		case <-sig:
			t.Fatal("CancelSignal closed for the deadline: a waiter's own timer is for that")
		default:
		}
		cancel()
		wait(t, sig)
		if err := c.Err(); err != context.Canceled {
			t.Fatalf("Err %v, want Canceled", err)
		}
	})
	t.Run("CancelSignal after release, or after Done, is the real one's", func(t *testing.T) {
		c := &deadlineCtx{Context: parent, deadline: time.Now().Add(time.Hour)}
		c.release()
		wait(t, c.CancelSignal())
		c = &deadlineCtx{Context: parent, deadline: time.Now().Add(5 * time.Millisecond)}
		if c.Done() != c.CancelSignal() {
			t.Fatal("CancelSignal with a real context is not its Done")
		}
		wait(t, c.CancelSignal())
	})
	t.Run("expired before release stays DeadlineExceeded", func(t *testing.T) {
		c := &deadlineCtx{Context: parent, deadline: time.Now().Add(-time.Millisecond)}
		c.release()
		if err := c.Err(); err != context.DeadlineExceeded {
			t.Fatalf("Err %v, want DeadlineExceeded", err)
		}
	})
}
