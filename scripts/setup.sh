#!/bin/sh
# Installs what the build, the demo and the tests need on a Debian or Ubuntu
# machine (run as root). Idempotent: packages already present are skipped.
set -eu
need=""
for pair in mmdebstrap:mmdebstrap apt-ftparchive:apt-utils rpm:rpm rpmbuild:rpm rpm2cpio:rpm2cpio \
	createrepo_c:createrepo-c dnf:dnf zypper:zypper busybox:busybox-static gpg:gnupg openssl:openssl \
	ip:iproute2 dpkg-deb:dpkg-dev zstd:zstd zip:zip unzip:unzip unshare:util-linux python3:python3 \
	arch-test:arch-test update-binfmts:binfmt-support; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || need="$need $pkg"
done
[ -e /usr/lib/x86_64-linux-gnu/zypp ] || [ -e /usr/bin/zypper ] || need="$need libzypp-bin"
# mmdebstrap checks the Debian images (the look-alike and the real Debian 11,
# 12 and 13 roots) against the Debian archive keys; Ubuntu hosts lack them.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need="$need debian-archive-keyring"
# The arm64 end-to-end tests run arm64 programs through qemu-user.
[ "$(uname -m)" = aarch64 ] || [ -e /usr/share/binfmts/qemu-aarch64 ] || [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] ||
	need="$need qemu-user-static"
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing tools ($need); run this script as root" >&2
		exit 1
	fi
	echo "installing:$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need libzypp-bin >/dev/null
fi
# Register qemu-aarch64 with binfmt_misc (the kernel's, for the whole
# machine): Debian's entry has the F flag, so it also serves the tests'
# chroots. Containers and hosts without systemd have nothing that mounts
# binfmt_misc or registers the entries at boot. Packages that ship only a
# systemd binfmt.d entry are registered with systemd-binfmt.
if [ "$(uname -m)" != aarch64 ] && [ "$(id -u)" = 0 ]; then
	b=/proc/sys/fs/binfmt_misc
	[ -e "$b/status" ] || mount -t binfmt_misc binfmt_misc "$b" ||
		echo "warning: cannot mount binfmt_misc at $b: the arm64 tests will not run" >&2
	if [ -e "$b/status" ] && ! grep -qs '^enabled' "$b/qemu-aarch64"; then
		if [ -e /usr/share/binfmts/qemu-aarch64 ]; then
			update-binfmts --enable qemu-aarch64
		elif [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] && command -v systemd-binfmt >/dev/null; then
			systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
		fi || true
		grep -qs '^enabled' "$b/qemu-aarch64" ||
			echo "warning: qemu-aarch64 is not registered with binfmt_misc: the arm64 tests will not run" >&2
	fi
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	echo "note: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
	echo "Go 1.26 or newer is required (https://go.dev/dl/)" >&2
	exit 1
}
