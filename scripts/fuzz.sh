#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 10s).
# Fuzz targets are found by name (func FuzzXxx in *_test.go).
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  for fn in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | awk '{print $2}'); do
    echo "fuzz ./$dir $fn ($fuzztime)"
    if ! go test -tags pebblegozstd -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "./$dir" >/tmp/understudy-fuzz.log 2>&1; then
      cat /tmp/understudy-fuzz.log
      status=1
    fi
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
exit $status
