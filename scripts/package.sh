#!/bin/sh
# Builds the extension package: static handler binaries for linux/amd64 and
# linux/arm64 plus HandlerManifest.json and the entry script, zipped as the
# agent expects (manifest at the root). The version comes from VERSION unless
# PACKAGE_VERSION is set (tests build other versions for update scenarios).
#
# Usage: scripts/package.sh [output-dir]   (default: dist/, left holding exactly one zip)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
version=${PACKAGE_VERSION:-$(tr -d ' \n' <VERSION)}
out=${1:-dist}
name=Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux

# The agent parses "<Name>-<Version>" with dotted digits only.
case "$version" in
'' | *[!0-9.]* | .* | *. | *..*)
	echo "invalid version '$version': digits and dots only (e.g. 1.0.3000.1)" >&2
	exit 2
	;;
esac
command -v zip >/dev/null || { echo "zip is missing: run scripts/setup.sh" >&2; exit 2; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
for arch in amd64 arm64; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -mod=readonly \
		-tags netgo,osusergo -ldflags "-s -w -X main.version=$version" \
		-o "$stage/bin/aadsshlogin-handler-$arch" .
done
cp HandlerManifest.json "$stage/"
cp scripts/aadsshlogin-handler "$stage/aadsshlogin-handler"
chmod 0755 "$stage/aadsshlogin-handler" "$stage"/bin/*

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/$name"-*.zip
(cd "$stage" && zip -q -X -r "$out/$name-$version.zip" HandlerManifest.json aadsshlogin-handler bin)
echo "$out/$name-$version.zip"
