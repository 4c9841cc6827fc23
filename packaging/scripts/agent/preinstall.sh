#!/bin/sh
# rctl-agent package, before its files are unpacked (deb preinst, rpm %pre):
# the system user the service runs as, so that files owned by it unpack right.
set -e
if ! getent group rctl-agent >/dev/null 2>&1; then
	groupadd --system rctl-agent
fi
if ! getent passwd rctl-agent >/dev/null 2>&1; then
	nologin=$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)
	useradd --system --gid rctl-agent --home-dir /var/lib/rctl-agent --no-create-home \
		--shell "$nologin" --comment "rctl node agent" rctl-agent
fi
exit 0
