#!/bin/sh
# Installs what the build, the demo and the tests need on a Debian or Ubuntu
# machine (run as root). Idempotent: packages already present are skipped.
set -eu
need=""
for pair in mmdebstrap:mmdebstrap apt-ftparchive:apt-utils rpm:rpm rpmbuild:rpm rpm2cpio:rpm2cpio \
	createrepo_c:createrepo-c dnf:dnf zypper:zypper busybox:busybox-static gpg:gnupg openssl:openssl \
	ip:iproute2 dpkg-deb:dpkg-dev zstd:zstd zip:zip unzip:unzip unshare:util-linux python3:python3; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -e /usr/lib/x86_64-linux-gnu/zypp ] || [ -e /usr/bin/zypper ] || need="$need libzypp-bin"
# mmdebstrap checks the Debian images (the look-alike and the real Debian 11,
# 12 and 13 roots) against the Debian archive keys; Ubuntu hosts lack them.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need="$need debian-archive-keyring"
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing tools ($need); run this script as root" >&2
		exit 1
	fi
	echo "installing:$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need libzypp-bin >/dev/null
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	echo "note: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
	echo "Go 1.26 or newer is required (https://go.dev/dl/)" >&2
	exit 1
}
