package app_test

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain keeps SIGHUP from killing the test binary when a test sends it
// before a broker's Run has registered for it; every running broker still
// receives it.
func TestMain(m *testing.M) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	os.Exit(m.Run())
}
