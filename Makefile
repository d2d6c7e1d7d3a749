# The one test command: installs what the tests need (on Debian), checks
# formatting and vet, and runs every test with the race detector.
GO ?= go

.PHONY: test test-rest test-matrix test-matrix-fuzz test-stacks cross deps lint build demo bench fuzz

# A race-built program sleeps a second at exit by default (GORACE
# atexit_sleep_ms): every test binary, and every program the tests start
# from one (drover commands, `drover host` agents, helper processes). A
# tenth of it still gives goroutines running at exit their chance to show
# a race (see raceExitSleep in cmd/drover/e2e_test.go). A GORACE of your
# own is kept as it is.
export GORACE ?= atexit_sleep_ms=100

# -parallel: cmd/drover's end-to-end tests mostly wait on real processes
# (restarts, checks, HAProxy, etcd), not the CPU, so more of them run at once
# than the default of one per core; each test's fleet is its own.
PARALLEL ?= 6
# The crash matrix is cmd/drover's longest test by far. go test starts
# paused parallel tests in no set order, and started late it would be most
# of the wait, so it runs from the start in a go test of its own beside the
# rest, once the first step has compiled cmd/drover (and the drover binary
# its TestMain builds) for both. TestE2EEtcdReplicasFailover runs there
# too: it is not parallel (its comment says why), and in the rest's go
# test it ran alone before any parallel test began, its whole time added
# to the wait; in the matrix's it still runs alone in its go test, first,
# and the matrix waits for it.
MATRIX = ^(TestE2ECrashMatrix|TestE2EEtcdReplicasFailover)$$

# The race-built drover cmd/drover's end-to-end tests run, built once here
# for both go tests of that package (DROVER_E2E_BINARY, see TestMain in
# cmd/drover/e2e_test.go): each linked its own before any test ran.
E2E_BINARY = $(CURDIR)/bin/e2e/drover

test: deps lint
	$(GO) build -race -o $(E2E_BINARY) ./cmd/drover
	DROVER_E2E_BINARY=$(E2E_BINARY) $(GO) test -race -count=1 -run '^$$' ./cmd/drover
	DROVER_E2E_BINARY=$(E2E_BINARY) $(MAKE) -j2 test-matrix-fuzz test-rest

test-rest:
	$(GO) test -race -count=1 -timeout 30m -parallel $(PARALLEL) -skip '$(MATRIX)' ./...

test-matrix:
	$(GO) test -race -count=1 -timeout 30m -run '$(MATRIX)' ./cmd/drover

# The matrix's side of make test ends minutes before the rest's, and make
# fuzz (a minute on its own) runs there once the matrix is done, instead of
# after both: the same targets for the same number of inputs each.
test-matrix-fuzz: test-matrix
	$(MAKE) fuzz test-stacks cross

# Operators run drover from their laptops: the controller must build for
# macOS too, though hosts and tests are Linux. About a minute of CPU cold
# (every dependency compiled for another system), on the side of make test
# that usually ends first. CROSS="darwin/arm64 freebsd/amd64" make cross
# checks more.
CROSS ?= darwin/arm64
cross:
	@set -e; for p in $(CROSS); do \
	  echo "build ./cmd/drover for $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./cmd/drover; \
	done

# bench/sim's TestStagingStacks bounds goroutine frame sizes, which the
# race detector's instrumentation inflates: it runs in a build without it.
test-stacks:
	$(GO) test -count=1 -run '^TestStagingStacks$$' ./bench/sim

# Every parser of untrusted input has a fuzz target (docs/security.md);
# `go test` runs their checked-in corpora (testdata/fuzz/) as tests, and
# this runs each one on top for a number of inputs that takes some 5-10 s on
# a quiet 2-core machine. A count, not a duration: with -fuzztime as a
# duration, Go's fuzzing coordinator can fail a target that found nothing
# with a bare "context deadline exceeded" when the deadline passes while a
# worker is busy (go.dev/issue/75804; seen on a loaded CI run), and a
# count has no deadline to race. Minimizing a new input is bounded by a
# count for the same reason. FUZZTIME=5m make fuzz hunts longer.
FUZZTIME ?=
FUZZ_TARGETS = \
	.:FuzzRenderCommand:40000 \
	.:FuzzFastTemplate:10000 \
	./config:FuzzConfig:12000 \
	./config:FuzzInventory:20000 \
	./release:FuzzUnpack:15000 \
	./transport/ssh:FuzzParseResponse:25000 \
	./transport/ssh:FuzzDecodeRequest:20000

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest#*:}; \
	  budget=$${FUZZTIME:-$${n}x}; \
	  echo "fuzz $$fn in $$pkg for $$budget"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$budget -fuzzminimizetime 500x $$pkg; \
	done

deps:
	./scripts/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/drover ./cmd/drover

demo:
	$(GO) run ./cmd/drover demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
