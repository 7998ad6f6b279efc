#!/bin/sh
# Explores every go fuzz target in the module for a fixed number of
# executions (default 10000 each: a few seconds for most targets), on top of
# the corpus committed under testdata/fuzz/, which `go test` also replays on
# its own. A failing input is written there; commit it with the fix.
#
# The budget is a count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when the
# time runs out while a worker is busy (go.dev/issue/75804, fixed in 1.27),
# which failed CI once with no input at fault.
set -eu
n=${1:-10000x}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $f ($n)"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$n" "$pkg" >"$log" 2>&1 || { cat "$log"; status=1; }
	done
done
exit $status
