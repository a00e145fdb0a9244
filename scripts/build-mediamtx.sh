#!/usr/bin/env bash
# Builds MediaMTX v1.15.3, the peer of `understudy bench --peer`, from the
# Go module proxy into bin/mediamtx. The module as published lacks the files
# its release build generates (VERSION, hls.min.js); they are written here:
# VERSION with the version, and an empty hls.min.js (the benchmark turns
# MediaMTX's HLS server off).
set -euo pipefail
cd "$(dirname "$0")/.."
ver=v1.15.3
out=$PWD/bin/mediamtx
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module mtxfetch

go 1.24

require github.com/bluenviron/mediamtx $ver
MOD
printf '//go:build tools\npackage tools\nimport _ "github.com/bluenviron/mediamtx"\n' > tools.go
GOFLAGS=-mod=mod go mod download github.com/bluenviron/mediamtx
src=$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/bluenviron/mediamtx)
cp -r "$src" mediamtx
chmod -R u+w mediamtx
cd mediamtx
echo "$ver" > internal/core/VERSION
: > internal/servers/hls/hls.min.js
GOFLAGS=-mod=mod go build -o "$out" .
echo "built $out"
