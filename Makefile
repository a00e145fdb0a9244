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
RACE_PKGS := ./placement/... ./segment/... ./backfill/... ./engine/... ./chaos/...
FUZZTIME  ?= 10s

.PHONY: all build test test-unit fuzz lint vet fmt-check staticcheck demo bench chaos clean proto proto-check proto-lint

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

# --- API contract (proto/) ---------------------------------------------------
# `make proto` regenerates the Go code of proto/ from its .proto files, the
# descriptor set with comments that server reflection serves, and records
# their hashes for the currency test in proto/understudy/v1, so CI
# needs no buf. `make proto-check` proves the committed code is what the
# tools generate now. Building buf takes ~3 minutes, once.
PROTO_PKG   := proto/understudy/v1
PROTO_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go

$(BIN)/buf: tools/go.mod
	cd tools && $(GO) build -o ../$(BIN)/buf github.com/bufbuild/buf/cmd/buf

# The plugins are built from the main module: the generator is then always
# the version of the runtime the generated code links against.
$(BIN)/protoc-gen-go: go.mod
	$(GO) build -o $@ google.golang.org/protobuf/cmd/protoc-gen-go

$(BIN)/protoc-gen-connect-go: go.mod
	$(GO) build -o $@ connectrpc.com/connect/cmd/protoc-gen-connect-go

proto-lint: $(BIN)/buf
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

# Generated files are removed first so a deleted .proto leaves no stale code.
proto: $(PROTO_TOOLS) proto-lint
	rm -f $(PROTO_PKG)/*.pb.go $(PROTO_PKG)/*/*.connect.go $(PROTO_PKG)/*.binpb
	$(BIN)/buf generate
	$(BIN)/buf build --as-file-descriptor-set -o $(PROTO_PKG)/descriptor_set.binpb
	cd tools && $(GO) run ./protohash ../$(PROTO_PKG)

# Regenerates into a copy of proto/ and diffs it against the committed tree:
# non-zero on any difference (stale, missing or hand-edited generated code, or
# a stale hash file).
proto-check: $(PROTO_TOOLS) proto-lint
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -R proto "$$tmp/proto"; \
	rm -f "$$tmp/$(PROTO_PKG)"/*.pb.go "$$tmp/$(PROTO_PKG)"/*/*.connect.go "$$tmp/$(PROTO_PKG)"/*.binpb \
		"$$tmp/$(PROTO_PKG)/protohash_gen_test.go"; \
	$(BIN)/buf generate -o "$$tmp"; \
	$(BIN)/buf build --as-file-descriptor-set -o "$$tmp/$(PROTO_PKG)/descriptor_set.binpb"; \
	(cd tools && $(GO) run ./protohash "$$tmp/$(PROTO_PKG)"); \
	if ! diff -r proto "$$tmp/proto"; then \
		echo "proto-check: generated code in proto/ is not current: run make proto"; exit 1; \
	fi; \
	echo "proto-check: generated code is current"

demo: build
	@./scripts/demo.sh

# chaos: every chaos scenario, the long ones too (CHAOS_LONG=1), against
# real node and camera processes, frame-checked. `make test` runs the
# short ones (kill-restart on one node, cluster-home-kill on three) with
# the rest of the suite.
chaos:
	CHAOS_LONG=1 $(GO) test $(GOFLAGS_T) -count=1 -run Chaos -timeout 30m -v ./chaos/...
	UNDERSTUDY_SCALE=1 $(GO) test $(GOFLAGS_T) -count=1 -run TestScaleDetectionAndConvergence -timeout 10m -v ./engine/cluster/

# bench: the short capacity run (the 4 Mbit/s ingest ramp of one node and
# the same cameras recorded side by side by MediaMTX, built from the module
# proxy; about 8 minutes; writes bench-report.json) and the placement
# benchmarks.
# `bin/understudy bench --full` is the long run behind bench/RESULTS.md.
bench: build
	@[ -x $(BIN)/mediamtx ] || ./scripts/build-mediamtx.sh || echo "MediaMTX could not be built: the report runs without the peer"
	$(BIN)/understudy bench --report bench-report.json
	$(GO) test $(GOFLAGS_T) -run '^$$' -bench . -benchtime 1x ./placement/...

clean:
	rm -rf $(BIN)
