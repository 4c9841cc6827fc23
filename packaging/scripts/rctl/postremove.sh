#!/bin/sh
# rctl package, after removal (deb postrm, rpm %postun). Never
# restarts anything on upgrade. Purge keeps /var/lib/rctl if it holds data
# (it is only removed when empty) and keeps the rctl user.
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
case "$1" in
	remove)
		if command -v deb-systemd-helper >/dev/null 2>&1; then
			deb-systemd-helper mask rctl.service >/dev/null || true
		fi
		;;
	purge)
		if command -v deb-systemd-helper >/dev/null 2>&1; then
			deb-systemd-helper purge rctl.service >/dev/null || true
			deb-systemd-helper unmask rctl.service >/dev/null || true
		fi
		rmdir /var/lib/rctl 2>/dev/null || true
		rmdir /etc/rctl 2>/dev/null || true
		;;
	0)
		rmdir /var/lib/rctl 2>/dev/null || true
		rmdir /etc/rctl 2>/dev/null || true
		;;
esac
exit 0
