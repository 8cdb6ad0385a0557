package testenv

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/app"
)

// StartDemoBroker runs a broker on the embedded development tenant on a
// loopback port, as `go run ./cmd/broker` does, until the test ends. It
// returns the App (for its DevKeys) and the base URL.
func StartDemoBroker(t testing.TB) (*app.App, string) {
	t.Helper()
	env, err := config.LoadEnv(func(k string) string { return map[string]string{"BROKER_ADDR": "127.0.0.1:0"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(env, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	if a.DevKeys == nil {
		t.Fatal("no development keys")
	}
	return a, "http://" + a.Addr()
}
