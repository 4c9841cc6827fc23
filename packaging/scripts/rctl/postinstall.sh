#!/bin/sh
# rctl package, after unpacking (deb postinst, rpm %post).
# First install: create the state directory and enable rctl.service for boot,
# WITHOUT starting it (its configuration, /etc/rctl/rctl.env, is not filled in yet).
# Upgrade: never start, stop or restart rctl.service: the running process keeps the
# old binary until the rollout restarts it (one host at a time).
set -e
first_install=false
case "$1" in
	configure) [ -n "$2" ] || first_install=true ;;   # deb: $2 = previous version
	1) first_install=true ;;                           # rpm: 1 install, 2 upgrade
	2) ;;
	abort-*) ;;
	*) exit 0 ;;
esac

install -d -o rctl -g rctl -m 0750 /var/lib/rctl
if $first_install; then
	chown root:rctl /etc/rctl/rctl.env && chmod 0640 /etc/rctl/rctl.env
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
if command -v deb-systemd-helper >/dev/null 2>&1 && [ "$1" != 1 ] && [ "$1" != 2 ]; then
	# As dh_installsystemd does, minus its start/restart: enable on first
	# install, keep an operator's "systemctl disable" across upgrades.
	deb-systemd-helper unmask rctl.service >/dev/null || true
	if deb-systemd-helper --quiet was-enabled rctl.service; then
		deb-systemd-helper enable rctl.service >/dev/null || true
	else
		deb-systemd-helper update-state rctl.service >/dev/null || true
	fi
elif $first_install && command -v systemctl >/dev/null 2>&1; then
	systemctl --system enable rctl.service >/dev/null 2>&1 || true
fi
if $first_install; then
	echo "rctl: installed and enabled for boot, not started. Fill in /etc/rctl/rctl.env, then: systemctl start rctl.service"
fi
exit 0
