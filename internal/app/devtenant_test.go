package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/app"
)

// TestEmbeddedDemoTenant: with no tenants file in development, the broker
// mints for demo-bot with the printed key, and refuses test keys of no one.
func TestEmbeddedDemoTenant(t *testing.T) {
	env, err := config.LoadEnv(func(k string) string {
		return map[string]string{"BROKER_ADDR": "127.0.0.1:0"}[k]
	})
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
	defer func() { cancel(); <-done; a.Close() }()

	if a.DevKeys == nil {
		t.Fatal("no development keys")
	}
	url := "http://" + a.Addr()
	r := do(t, "POST", url+"/token", a.DevKeys.Secret, map[string]any{"agent": "demo-bot", "channel": "webrtc"})
	expect(t, r, 201, "")
	expect(t, do(t, "POST", url+"/token/redeem", a.DevKeys.Secret, map[string]any{"token": r.Body["token"]}), 200, "")
	expect(t, do(t, "POST", url+"/token", a.DevKeys.Publishable, flo), 401, "unauthorized")
}
