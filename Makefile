.PHONY: run test bench

# The broker on the embedded development tenant.
run:
	go run ./cmd/broker

# The whole test suite, installing what it needs (as .ci/run does).
test:
	./scripts/test.sh

# The load harness: broker vs the floor and a Node.js peer, medians of 3 runs.
bench:
	go run ./cmd/broker-bench
