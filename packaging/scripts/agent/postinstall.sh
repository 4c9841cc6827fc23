#!/bin/sh
# rctl-agent package, after unpacking (deb postinst, rpm %post).
# First install: create the state directory and enable rctl-agent.service for boot,
# WITHOUT starting it (its configuration, /etc/rctl/agent.env, is not filled in yet).
# Upgrade: never start, stop or restart rctl-agent.service: the running process keeps the
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

install -d -o rctl-agent -g rctl-agent -m 0750 /var/lib/rctl-agent
if $first_install; then
	chown root:rctl-agent /etc/rctl/agent.env && chmod 0640 /etc/rctl/agent.env
fi
# Byte-compile the agent's modules (the service cannot write them: ProtectSystem).
if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 -m compileall -q /usr/lib/rctl-agent >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
if command -v deb-systemd-helper >/dev/null 2>&1 && [ "$1" != 1 ] && [ "$1" != 2 ]; then
	# As dh_installsystemd does, minus its start/restart: enable on first
	# install, keep an operator's "systemctl disable" across upgrades.
	deb-systemd-helper unmask rctl-agent.service >/dev/null || true
	if deb-systemd-helper --quiet was-enabled rctl-agent.service; then
		deb-systemd-helper enable rctl-agent.service >/dev/null || true
	else
		deb-systemd-helper update-state rctl-agent.service >/dev/null || true
	fi
elif $first_install && command -v systemctl >/dev/null 2>&1; then
	systemctl --system enable rctl-agent.service >/dev/null 2>&1 || true
fi
if $first_install; then
	echo "rctl-agent: installed and enabled for boot, not started. Fill in /etc/rctl/agent.env, then: systemctl start rctl-agent.service"
fi
exit 0
