.PHONY: run test test-short bench

# The broker on the embedded development tenant.
run:
	go run ./cmd/broker

# The whole test suite, installing what it needs (as .ci/run does).
test:
	./scripts/test.sh

# The tests that need no outside process (no Redis, LiveKit, Chromium, Node).
test-short:
	go test -short ./...

# The load harness (its own module, bench/): broker vs the floor and a
# Node.js peer, medians of 5 rounds. Extra flags: make bench BENCHFLAGS='-runs 1'.
bench:
	go -C bench run . $(BENCHFLAGS)
