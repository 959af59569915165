# Junction's build, test and CI targets. Everything but `interop` needs only Go.
# Run `make help` for the list.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on the project's machines; put it on PATH.
export PATH := /usr/local/go/bin:$(PATH)

GO ?= go
BIN := bin/junction
# Nested modules with their own go.mod: the broker's module does not see them.
MODULES := . interop bench
# staticcheck 2026.2.2; the newest release, checked to run on Go 1.26.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 10s
BENCHTIME ?= 200ms
ARGS ?=

.PHONY: help build run test interop bench bench-compare soak fuzz lint check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-9s %s\n", $$1, $$2}'

build: ## build bin/junction (pure Go, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/junction

run: build ## build, then run bin/junction $(ARGS)
	./$(BIN) $(ARGS)

test: ## go vet and go test -race in every module (broker, interop's Go clients, bench)
	@for m in $(MODULES); do \
		echo "== $$m: go vet"; (cd $$m && $(GO) vet ./...); \
		echo "== $$m: go test -race"; (cd $$m && $(GO) test -race -count=1 ./...); \
	done

interop: build ## Python and Node client interop tests (installs their packages if missing)
	interop/deps.sh
	JUNCTION_BIN=$(CURDIR)/$(BIN) interop/run.sh

bench: ## benchmarks in every module, briefly (BENCHTIME=200ms)
	@for m in $(MODULES); do \
		echo "== $$m: go test -bench"; \
		(cd $$m && $(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) ./...); \
	done

# Junction against RabbitMQ and Mosquitto on this machine; ARGS=--quick for
# short runs, ARGS=--pin to pin brokers to CPU 0 and the generator to CPU 1.
bench-compare: build ## Junction vs RabbitMQ and Mosquitto side by side; writes bench/results/DATE.md (ARGS=--quick, --pin)
	bench/deps.sh
	cd bench && CGO_ENABLED=0 $(GO) build -o ../bin/loadgen ./cmd/loadgen && CGO_ENABLED=0 $(GO) build -o ../bin/bench-compare ./cmd/compare
	cd bench && ../bin/bench-compare --junction ../bin/junction --loadgen ../bin/loadgen $(ARGS)

# Mixed load on one broker (every protocol, persistent and transient, runs that
# connect and disconnect) while its memory, goroutines and open files are
# sampled; fails on a lost message or figures that do not level off.
# ARGS passes flags: ARGS="-duration 5m -interval 30s"; see bench/cmd/soak.
soak: build ## 30-minute mixed-load soak; writes bench/results/soak-DATE.{md,png} (ARGS="-duration 5m")
	cd bench && CGO_ENABLED=0 $(GO) build -o ../bin/soak ./cmd/soak
	./bin/soak -junction $(BIN) $(ARGS)

# Every `func FuzzXxx` in the broker's module, each run alone for FUZZTIME.
fuzz: ## run every fuzz target for FUZZTIME (10s) each
	@n=0; \
	while IFS= read -r file; do \
		dir=./$$(dirname "$$file"); \
		for name in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$$file"); do \
			echo "== $$dir $$name"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime=$(FUZZTIME) "$$dir" 2>&1 | tee /tmp/junction-fuzz.out; then \
				if grep -q 'context deadline exceeded' /tmp/junction-fuzz.out && ! grep -q 'Failing input written' /tmp/junction-fuzz.out; then \
					echo "== $$name: the fuzzing engine timed out without a failing input (a Go tooling flake); once more"; \
					$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime=$(FUZZTIME) "$$dir"; \
				else exit 1; fi; \
			fi; \
			n=$$((n+1)); \
		done; \
	done < <(find . -path ./interop -prune -o -path ./bench -prune -o -name node_modules -prune \
		-o -name testdata -prune -o -name '*_test.go' -print | sed 's|^\./||' | sort); \
	echo "fuzz: $$n targets, $(FUZZTIME) each"

lint: ## staticcheck (pinned) on every module
	@for m in $(MODULES); do \
		echo "== $$m: staticcheck"; (cd $$m && $(GO) run $(STATICCHECK) ./...); \
	done

check: ## gofmt -l, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')); \
	if [[ -n $$out ]]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do echo "== $$m: go vet"; (cd $$m && $(GO) vet ./...); done
	@$(MAKE) --no-print-directory lint

clean: ## remove build output and the interop Node packages
	rm -rf bin interop/node/node_modules
