# The one test command: installs what the tests need (on Debian), checks
# formatting and vet, and runs every test with the race detector.
GO ?= go

.PHONY: test test-rest test-matrix deps lint build demo bench fuzz

# -parallel: cmd/drover's end-to-end tests mostly wait on real processes
# (restarts, checks, HAProxy, etcd), not the CPU, so more of them run at once
# than the default of one per core; each test's fleet is its own.
PARALLEL ?= 6
# The crash matrix is cmd/drover's longest test by far. go test starts
# paused parallel tests in no set order, and started late it would be most
# of the wait, so it runs from the start in a go test of its own beside the
# rest, once the first step has compiled cmd/drover (and the drover binary
# its TestMain builds) for both.
MATRIX = ^TestE2ECrashMatrix$$

test: deps lint
	$(GO) test -race -count=1 -run '^$$' ./cmd/drover
	$(MAKE) -j2 test-matrix test-rest
	$(MAKE) fuzz

test-rest:
	$(GO) test -race -count=1 -timeout 30m -parallel $(PARALLEL) -skip '$(MATRIX)' ./...

test-matrix:
	$(GO) test -race -count=1 -timeout 30m -run '$(MATRIX)' ./cmd/drover

# Every parser of untrusted input has a fuzz target (docs/security.md);
# `go test` runs their checked-in corpora (testdata/fuzz/) as tests, and
# this runs each one for a short while on top. FUZZTIME=5m for a real hunt.
FUZZTIME ?= 8s
FUZZ_TARGETS = \
	.:FuzzRenderCommand \
	./config:FuzzConfig \
	./config:FuzzInventory \
	./release:FuzzUnpack \
	./transport/ssh:FuzzParseResponse \
	./transport/ssh:FuzzDecodeRequest

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
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
