#!/bin/sh
# A stand-in for the shipped AADSSHLoginForLinux 1.0.2385.1, written from the
# behaviour documented in shared/reference/existing-extension.md (§2.3, §2.4,
# §4) — not Microsoft's script. It reproduces only what matters for updates:
# install/update write the version marker; uninstall skips package removal
# when the marker holds another version, and otherwise removes the packages.
v=1.0.2385.1
marker=/var/log/AADSSHLoginForLinux.version
cd "$(dirname "$0")"
status() {
	seq=$(ls config 2>/dev/null | sed -n 's/^\([0-9][0-9]*\)\.settings$/\1/p' | sort -n | tail -1)
	[ -n "$seq" ] || return 0
	printf '[{"version":1,"timestampUTC":"%s","status":{"operation":"%s","status":"success","formattedMessage":{"lang":"en","message":"Done"}}}]' \
		"$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "$1" >"status/$seq.status"
}
case "$1" in
install | update)
	echo "$v" >"$marker"
	status Install
	;;
enable) status Enable ;;
disable) status Disable ;;
uninstall)
	if [ -f "$marker" ] && [ "$(cat "$marker")" != "$v" ]; then
		echo "Skipping uninstall: another version of the extension is installed"
		exit 0
	fi
	if command -v apt-get >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y aadsshlogin aadsshlogin-selinux
	elif command -v zypper >/dev/null 2>&1; then
		zypper --non-interactive remove aadsshlogin aadsshlogin-selinux
	else
		yum erase -y aadsshlogin aadsshlogin-selinux
	fi
	rm -f "$marker"
	status UnInstall
	;;
*)
	echo "Unknown command" >&2
	exit 19
	;;
esac
