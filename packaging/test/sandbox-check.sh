#!/usr/bin/env bash
# packaging/test/sandbox-check.sh: runs the installed rctl and rctl-agent units
# under a real systemd, with all their hardening, in a systemd-nspawn container
# (this machine's PID 1 is not systemd). Needs root, systemd-nspawn
# (Debian package systemd-container) and both packages installed here; called
# by package-test.sh. The container boots a copy of /etc with /usr read-only
# from the host and a private network; the host is not changed.
#
# Checked inside:
#   A. the packaged rctl.env (not filled in): rctl.service fails at once with
#      exit status 2 and rctl's message, and is not restarted
#   B. configured (TLS, one server, one agent): the server listens, writes and
#      fsyncs its raft log in /var/lib/rctl, serves RPC; the agent registers and
#      runs a shell task as rctl-agent (HOME writable, /etc read-only);
#      reload = SIGHUP (event=tls_reload); kill -9 restarts it; stopping the
#      agent drains a running task; stopping the server exits 0; no seccomp
#      or permission errors in the journal
#   C. the documented drop-in (agent as root, tasks --run-as rctl-task): the
#      task runs as rctl-task and cannot read the agent's key
# Prints "ok NAME" / "FAIL NAME: …" lines; exits 1 on any failure.
set -euo pipefail
work=$(mktemp -d /tmp/rctl-sandbox.XXXXXX)
chmod 755 "$work"
R=$work/root
cleanup() {
	rm -rf "$work"
	# What systemd-nspawn leaves behind on a host without systemd (empty dirs).
	rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn \
		/run/systemd/nspawn-root 2>/dev/null || true
}
trap cleanup EXIT

for p in rctl rctl-agent; do
	dpkg -s "$p" >/dev/null 2>&1 || { echo "FAIL setup: package $p is not installed"; exit 1; }
done

# The container's root: a copy of /etc (users, units, the installed packages'
# files), the host's /usr read-only, an empty /var.
mkdir -p "$R"/{usr,var/lib,tmp,root,proc,sys,dev,run} "$work/results"
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$R/$l"; done
cp -a /etc "$R/etc"
rm -f "$R/etc/os-release" "$R/etc/machine-id"
cp /usr/lib/os-release "$R/etc/os-release"
systemd-machine-id-setup --root="$R" >/dev/null 2>&1
useradd --root "$R" --system --no-create-home --home-dir / --shell /usr/sbin/nologin rctl-task 2>/dev/null

# TLS: a CA, the server s1, the agent w1, an operator.
tls=$work/tls
/usr/bin/rctl tls ca create --dir "$tls/ca" >/dev/null
/usr/bin/rctl tls cert create --ca-dir "$tls/ca" --role server --name s1 --host 127.0.0.1 --out "$tls" >/dev/null
/usr/bin/rctl tls cert create --ca-dir "$tls/ca" --role agent --name w1 --out "$tls" >/dev/null
/usr/bin/rctl tls cert create --ca-dir "$tls/ca" --role operator --name op --out "$tls" >/dev/null
chmod -R a+rX "$tls"
install -m 0644 "$tls/ca/ca.crt" "$R/etc/rctl/ca.crt"
install -m 0640 -g "$(stat -c %g "$R/etc/rctl/rctl.env")" "$tls/s1.crt" "$R/etc/rctl/server.crt"
install -m 0640 -g "$(stat -c %g "$R/etc/rctl/rctl.env")" "$tls/s1.key" "$R/etc/rctl/server.key"
install -m 0640 -g "$(stat -c %g "$R/etc/rctl/agent.env")" "$tls/w1.crt" "$R/etc/rctl/agent.crt"
install -m 0640 -g "$(stat -c %g "$R/etc/rctl/agent.env")" "$tls/w1.key" "$R/etc/rctl/agent.key"
cp "$R/etc/rctl/rctl.env" "$work/rctl.env.default"
cat >>"$R/etc/rctl/rctl.env" <<'EOF'
RCTL_NODE_ID=s1
RCTL_BIND=127.0.0.1:50051
RCTL_ADVERTISE=127.0.0.1:50051
RCTL_PEERS=s1=127.0.0.1:50051
EOF
cp "$R/etc/rctl/rctl.env" "$work/rctl.env.configured"
cat >>"$R/etc/rctl/agent.env" <<'EOF'
RCTL_AGENT_SERVERS=127.0.0.1:50051
RCTL_AGENT_EXECUTORS=sleep,shell
EOF

cat >"$R/etc/systemd/system/rctl-sandbox-check.service" <<EOF
[Unit]
Description=rctl package sandbox check
[Service]
Type=oneshot
ExecStart=$work/inside.sh
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=240
EOF
cat >"$R/etc/systemd/system/rctl-sandbox-check.target" <<'EOF'
[Unit]
Description=rctl package sandbox check
Wants=rctl-sandbox-check.service
EOF

cat >"$work/inside.sh" <<'INSIDE'
#!/bin/bash
# Runs as a oneshot unit inside the container.
work=$(dirname "$0")
exec >/results/log 2>&1
res=/results/results
ok() { echo "ok $1" >>$res; }
fail() { echo "FAIL $1: $2" >>$res; }
check() { # check NAME COND DETAIL
	if eval "$2"; then ok "$1"; else fail "$1" "$3"; fi
}
prop() { systemctl show "$1" -p "$2" --value; }
export RCTL_ADDR=127.0.0.1:50051 RCTL_TLS_CA=$work/tls/ca/ca.crt RCTL_TLS_CERT=$work/tls/op.crt RCTL_TLS_KEY=$work/tls/op.key
set -x

# A. the packaged env file
systemctl stop rctl rctl-agent
cp $work/rctl.env.default /etc/rctl/rctl.env
systemctl start rctl
sleep 4
check unfilled-env-fails '[ "$(prop rctl ActiveState)" = failed ] && [ "$(prop rctl ExecMainStatus)" = 2 ] && [ "$(prop rctl NRestarts)" = 0 ]' \
	"state $(prop rctl ActiveState), status $(prop rctl ExecMainStatus), restarts $(prop rctl NRestarts)"
msg=$(journalctl -u rctl -o cat --no-pager | grep '^rctl: ' | tail -1)
check unfilled-env-message '[ -n "$msg" ]' "no rctl: line in the journal"
echo "$msg" >/results/unfilled-message

# B. configured
cp $work/rctl.env.configured /etc/rctl/rctl.env
systemctl reset-failed rctl
systemctl start rctl rctl-agent
for i in $(seq 1 60); do out=$(rctl acl bootstrap 2>&1) && break; sleep 0.5; done
export RCTL_TOKEN=$(echo "$out" | tail -1 | awk '{print $NF}')
check server-serves-tls '[ -n "$RCTL_TOKEN" ] && rctl status >/dev/null' "rctl status over TLS failed: $out"
for i in $(seq 1 60); do rctl nodes 2>/dev/null | grep -q 'w1 .*healthy' && break; sleep 0.5; done
check agent-registers 'rctl nodes | grep -q "w1 .*healthy"' "$(rctl nodes 2>&1)"
id=$(rctl task add --type shell --payload cmd='id -un; touch "$HOME/t" && echo home-writable; touch /etc/t 2>/dev/null || echo etc-readonly')
for i in $(seq 1 60); do rctl task get "$id" | grep -qE '^status: +(complete|failed)' && break; sleep 0.5; done
out=$(rctl task get "$id")
check task-runs-sandboxed 'grep -q "status: *complete" <<<"$out" && grep -qx "  rctl-agent" <<<"$out" && grep -q home-writable <<<"$out" && grep -q etc-readonly <<<"$out"' "$out"
check raft-log-fsynced 'rctl snapshot save /tmp/snap >/dev/null && [ "$(stat -c "%U %a" /var/lib/rctl/raft/raft.db)" = "rctl 600" ] && [ "$(stat -c "%U %G %a" /var/lib/rctl)" = "rctl rctl 750" ]' \
	"$(ls -la /var/lib/rctl /var/lib/rctl/raft 2>&1)"
systemctl reload rctl
sleep 1
check reload-is-sighup 'journalctl -u rctl -o cat --no-pager | grep -q "\"event\":\"tls_reload\""' "no event=tls_reload after systemctl reload"
pid=$(prop rctl MainPID)
kill -9 "$pid"
sleep 4
check restart-on-failure '[ "$(prop rctl NRestarts)" = 1 ] && [ "$(prop rctl ActiveState)" = active ] && [ "$(prop rctl MainPID)" != "$pid" ]' \
	"restarts $(prop rctl NRestarts), state $(prop rctl ActiveState)"
for i in $(seq 1 60); do rctl nodes 2>/dev/null | grep -q 'w1 .*healthy' && break; sleep 0.5; done
id=$(rctl task add --type sleep --payload seconds=3)
for i in $(seq 1 60); do rctl task get "$id" | grep -qE '^status: +running' && break; sleep 0.2; done
systemctl stop rctl-agent
check agent-stop-drains '[ "$(prop rctl-agent Result)" = success ] && rctl task get "$id" | grep -q "status: *complete"' \
	"result $(prop rctl-agent Result); $(rctl task get "$id" 2>&1 | head -3)"
systemctl stop rctl
check server-stop-clean '[ "$(prop rctl Result)" = success ] && [ "$(prop rctl ExecMainStatus)" = 0 ]' \
	"result $(prop rctl Result), status $(prop rctl ExecMainStatus)"
denials=$(journalctl -u rctl -u rctl-agent -o cat --no-pager | grep -iE 'seccomp|operation not permitted|permission denied|read-only file system' || true)
check no-sandbox-denials '[ -z "$denials" ]' "$denials"

# C. the documented drop-in: agent as root, tasks as rctl-task
mkdir -p /etc/systemd/system/rctl-agent.service.d
cat >/etc/systemd/system/rctl-agent.service.d/run-as.conf <<'EOF'
[Service]
User=root
Group=root
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_KILL
SystemCallFilter=
SystemCallFilter=@system-service
Environment=RCTL_AGENT_RUN_AS=rctl-task
EOF
chown root:root /etc/rctl/agent.key /etc/rctl/agent.crt
chmod 0600 /etc/rctl/agent.key
systemctl daemon-reload
systemctl start rctl rctl-agent
for i in $(seq 1 60); do rctl nodes 2>/dev/null | grep -q 'w1 .*healthy' && break; sleep 0.5; done
id=$(rctl task add --type shell --payload cmd='id -un; cat /etc/rctl/agent.key >/dev/null 2>&1 && echo key-readable || echo key-unreadable')
for i in $(seq 1 60); do rctl task get "$id" | grep -qE '^status: +(complete|failed)' && break; sleep 0.5; done
out=$(rctl task get "$id")
check root-agent-run-as 'grep -qx "  rctl-task" <<<"$out" && grep -q key-unreadable <<<"$out"' "$out"
systemctl stop rctl-agent rctl
echo DONE >>$res
INSIDE
chmod 755 "$work/inside.sh"

timeout 300 systemd-nspawn --quiet -D "$R" --register=no --keep-unit --private-network \
	--bind-ro=/usr --bind="$work" --bind="$work/results:/results" --machine=rctl-sandbox-check \
	-b -- systemd.unit=rctl-sandbox-check.target >"$work/nspawn.log" 2>&1 || true
if ! grep -qx DONE "$work/results/results" 2>/dev/null; then
	cat "$work/results/results" 2>/dev/null
	tail -40 "$work/results/log" 2>/dev/null || tail -40 "$work/nspawn.log"
	echo "FAIL sandbox: the check did not finish"
	exit 1
fi
grep -v '^DONE$' "$work/results/results"
echo "unfilled rctl.env: $(cat "$work/results/unfilled-message")"
! grep -q '^FAIL' "$work/results/results"
