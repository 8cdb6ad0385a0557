//go:build !race

package app_test

// raceEnabled: this test binary has no race detector; the broker processes
// the tests start are built the same way, from the same build cache.
const raceEnabled = false
