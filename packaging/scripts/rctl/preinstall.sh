#!/bin/sh
# rctl package, before its files are unpacked (deb preinst, rpm %pre):
# the system user the service runs as, so that files owned by it unpack right.
set -e
if ! getent group rctl >/dev/null 2>&1; then
	groupadd --system rctl
fi
if ! getent passwd rctl >/dev/null 2>&1; then
	nologin=$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)
	useradd --system --gid rctl --home-dir /var/lib/rctl --no-create-home \
		--shell "$nologin" --comment "rctl server" rctl
fi
exit 0
