#!/bin/sh
# rctl package, before removal (deb prerm, rpm %preun). Stops and
# disables rctl.service only when the package is removed, never on upgrade.
set -e
case "$1" in
	remove|0)
		if [ -d /run/systemd/system ]; then
			systemctl --system stop rctl.service >/dev/null 2>&1 || true
		fi
		if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
			systemctl --system --no-reload disable rctl.service >/dev/null 2>&1 || true
		fi
		;;
esac
exit 0
