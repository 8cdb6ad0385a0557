package app_test

import (
	"syscall"
	"testing"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/pkg/token"
)

func hashOf(s string) string { return apikey.Hash(s) }

// sighup sends SIGHUP to this test process; every running App reloads.
func sighup(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func es256PEM(t testing.TB) string {
	t.Helper()
	k, err := token.GenerateKey(token.ES256)
	if err != nil {
		t.Fatal(err)
	}
	data, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
