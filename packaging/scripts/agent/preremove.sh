#!/bin/sh
# rctl-agent package, before removal (deb prerm, rpm %preun). Stops and
# disables rctl-agent.service only when the package is removed, never on upgrade.
set -e
case "$1" in
	remove|0)
		if [ -d /run/systemd/system ]; then
			systemctl --system stop rctl-agent.service >/dev/null 2>&1 || true
		fi
		if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
			systemctl --system --no-reload disable rctl-agent.service >/dev/null 2>&1 || true
		fi
		find /usr/lib/rctl-agent -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
		;;
esac
exit 0
