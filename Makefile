# Understudy build. Everything a fresh machine with only Go needs is fetched
# by these targets: module dependencies through the Go module proxy, tools
# built from tools/go.mod into bin/.
GO        ?= go
BIN       := bin
# pebblegozstd: Pebble's pure-Go zstd, so cgo (needed by -race) does not
# compile zstd from C on every cold build.
TAGS      := pebblegozstd
GOFLAGS_T := -tags $(TAGS)
# Packages with concurrency run under the race detector.
RACE_PKGS := ./placement/... ./segment/... ./engine/... ./chaos/...
FUZZTIME  ?= 10s

.PHONY: all build test test-unit fuzz lint vet fmt-check staticcheck demo bench clean

all: build

build:
	$(GO) build $(GOFLAGS_T) -o $(BIN)/understudy ./cmd/understudy

$(BIN)/staticcheck: tools/go.mod
	cd tools && $(GO) build -o ../$(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

# test: lint, the whole suite (race detector on the concurrent packages), and
# a short run of every fuzz target.
test: lint build test-unit fuzz

test-unit:
	$(GO) test $(GOFLAGS_T) -count=1 ./...
	CGO_ENABLED=1 $(GO) test $(GOFLAGS_T) -race -count=1 $(RACE_PKGS)

fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(GOFLAGS_T) ./...

staticcheck: $(BIN)/staticcheck
	$(BIN)/staticcheck -tags $(TAGS) ./...

demo: build
	@./scripts/demo.sh

bench:
	$(GO) test $(GOFLAGS_T) -run '^$$' -bench . -benchtime 1x ./placement/...

clean:
	rm -rf $(BIN)
