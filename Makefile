# The one test command: installs what the tests need (on Debian), checks
# formatting and vet, and runs every test with the race detector.
GO ?= go

.PHONY: test deps lint build demo bench

test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...

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
