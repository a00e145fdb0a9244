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
RACE_PKGS := ./placement/... ./segment/... ./replica/... ./backfill/... ./engine/... ./chaos/...
FUZZTIME  ?= 10s

.PHONY: all build test test-unit fuzz lint vet fmt-check staticcheck demo bench chaos clean proto proto-check proto-lint ts ts-gen

all: build

build:
	$(GO) build $(GOFLAGS_T) -o $(BIN)/understudy ./cmd/understudy

$(BIN)/staticcheck: tools/go.mod
	cd tools && $(GO) build -o ../$(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

# test: lint, the TypeScript client's checks, the whole suite (race detector
# on the concurrent packages), and a short run of every fuzz target.
test: lint build ts test-unit fuzz

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
# needs no buf; after it, `make ts-gen` regenerates the TypeScript client
# from that descriptor set. `make proto-check` proves the committed code is what the
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

# --- TypeScript client (clients/ts) ----------------------------------------
# The Connect client for web frontends, generated from the .proto files by
# protoc-gen-es (a pinned dev dependency, run by node). Its input is the
# descriptor set that `make proto` writes (comments included), so neither buf
# nor protoc is needed: `make proto` then `make ts-gen` after a .proto change.
# `make ts` (run by `make test`) installs the locked dependencies, fails when
# the committed src/gen is not what the plugin generates now, and type-checks
# the package and its example. cmd/understudy's TestTypeScriptClientExample
# runs the compiled example against a real node.
TS_DIR  := clients/ts
TS_DEPS := $(TS_DIR)/node_modules/.package-lock.json

# npm ci writes node_modules/.package-lock.json: reinstalled only when the
# lockfile or package.json changes.
$(TS_DEPS): $(TS_DIR)/package-lock.json $(TS_DIR)/package.json
	@command -v npm >/dev/null 2>&1 || { echo "make ts: node and npm are required (apt-get install -y nodejs npm)"; exit 1; }
	cd $(TS_DIR) && npm ci --no-audit --no-fund

ts-gen: $(TS_DEPS)
	cd $(TS_DIR) && npm run --silent generate

ts: $(TS_DEPS)
	cd $(TS_DIR) && npm run --silent check-generated
	cd $(TS_DIR) && npm run --silent typecheck

demo: build
	@./scripts/demo.sh

# chaos: every chaos scenario, the long ones too (CHAOS_LONG=1), against
# real node and camera processes, frame-checked: the disk, camera, domain
# and clock faults switched at run time among them (TestChaosLong builds
# the chaosfaults binary they need). The suite's tests of its own checkers
# (TestChaosCheckersFail*) run in `make test`, not again here. `make test` runs the
# short ones (kill-restart on one node, cluster-home-kill on three) with
# the rest of the suite. The long ones run three at a time, each on
# loopback addresses of its own; CHAOS_SEED=S replays a run's seed.
chaos:
	CHAOS_LONG=1 $(GO) test $(GOFLAGS_T) -count=1 -parallel 3 -run 'TestChaos(Long|KillRestart|ClusterHomeKill)$$' -timeout 30m -v ./chaos/...
	UNDERSTUDY_E2E_DOWN=60s $(GO) test $(GOFLAGS_T) -count=1 -run TestClusterFailoverNoGap -timeout 10m -v ./cmd/understudy/
	UNDERSTUDY_SCALE=1 $(GO) test $(GOFLAGS_T) -count=1 -run TestScaleDetectionAndConvergence -timeout 10m -v ./engine/cluster/

# bench: the short capacity run (the 4 Mbit/s ingest ramp of one node and
# the same cameras recorded side by side by MediaMTX, built from the module
# proxy; about 8 minutes; writes bench-report.json), the placement
# benchmarks, backfill from a peer beside 20 live cameras (about 40 s) and
# a 30 s disk stall under 50 cameras of 4 Mbit/s (about 90 s).
# `bin/understudy bench --full` is the long run behind bench/RESULTS.md.
bench: build
	@[ -x $(BIN)/mediamtx ] || ./scripts/build-mediamtx.sh || echo "MediaMTX could not be built: the report runs without the peer"
	$(BIN)/understudy bench --report bench-report.json
	$(GO) test $(GOFLAGS_T) -run '^$$' -bench . -benchtime 1x ./placement/...
	$(GO) test $(GOFLAGS_T) -run '^$$' -bench BackfillFromPeer -benchtime 1x ./engine/
	CHAOS_LONG=1 UNDERSTUDY_STALL_CAMERAS=50 $(GO) test $(GOFLAGS_T) -count=1 -run TestDiskStallLosesNothing -v ./engine/

clean:
	rm -rf $(BIN) $(TS_DIR)/node_modules $(TS_DIR)/dist
