//go:build race

package app_test

// raceEnabled: this test binary has the race detector, so the broker
// processes the tests start are built with it too.
const raceEnabled = true
