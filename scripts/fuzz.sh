#!/bin/sh
# Runs every go fuzz target in the module for a short time (default 5s each),
# on top of the corpus committed under testdata/fuzz/.
set -eu
t=${1:-5s}
cd "$(dirname "$0")/.."
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $f ($t)"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; status=1; }
	done
done
rm -f /tmp/fuzz.$$.log
exit $status
