package app_test

import (
	"io"
	"syscall"
	"testing"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

func hashOf(s string) string { return apikey.Hash(s) }

// sighup sends SIGHUP to this test process; every running App reloads.
func sighup(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }
