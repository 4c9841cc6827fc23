#!/usr/bin/env bash
# ansible/test/rollout-test.sh: make rollout-test (needs root).
#
# Five test hosts, 3 "aws" + 2 "gcp", each a network namespace (ro-aws-1 …)
# on a bridge (ro-br0, 10.77.0.0/24) with its own sshd (Debian's
# openssh-server) and its own /etc/rctl, /var/lib/rctl, /var/lib/rctl-agent,
# /opt/rctl, /opt/rctl-agent, /run/rctl and /var/log/rctl: sshd runs in a
# private mount namespace where those paths are bind mounts of per-host
# directories, so every ssh session (and every process it starts) sees the
# host's own files. Ansible reaches them over ssh with a throwaway key.
#
#   0. The inventory comes from Terraform's outputs: terraform/tf-inventory.py
#      on terraform/testdata/output.json (the 3aws-2gcp example) with the
#      test hosts' addresses in place of the recorded ones.
#   1. site.yml installs release N-1 (this source stamped 0.9.0, agent 0.9.0)
#      with the binary install method and rctl_service_manager=process, TLS
#      and ACLs on; two hosts also run an agent.
#   2. site.yml again: the recap must say changed=0 everywhere; then once
#      more with a changed setting, which restarts the servers one at a
#      time behind the health gate.
#   3. upgrade.yml to this build while writeclient adds tasks (unique ids,
#      retried with the same id) and watches the leader.
#   4. Every acknowledged write is read back.
#
# Prints one line:
#   lost_writes=N failed_writes=N max_write_gap_ms=N leader_changes=N changed_on_second_run=N
# and exits non-zero unless lost=0, failed=0, max gap < 2000 ms and
# changed_on_second_run=0. Everything it creates (namespaces, bridge,
# processes, mounts, temporary files) is removed on exit; it stops only
# processes it started (its sshds and what their sessions started: the
# processes inside its own namespaces, by pid) and the ssh masters and
# write client it started. Logs: kept in $RO_KEEP (if set) or printed in
# part on failure.
#
# Environment: ANSIBLE_VENV (ansible-core), RCTL_BIN (this build), GO.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
: "${ANSIBLE_VENV:?set ANSIBLE_VENV (make rollout-test does)}"
: "${RCTL_BIN:?set RCTL_BIN (make rollout-test does)}"
GO=${GO:-go}
[ "$(id -u)" = 0 ] || { echo "rollout-test: needs root (network namespaces, sshd)" >&2; exit 1; }

t0=$(date +%s)
say() { printf 'rollout-test [%3ss]: %s\n' $(($(date +%s) - t0)) "$*" >&2; }

bridge=ro-br0
subnet=10.77.0
hosts=(aws-1 aws-2 aws-3 gcp-1 gcp-2)
declare -A ip=([aws-1]=$subnet.11 [aws-2]=$subnet.12 [aws-3]=$subnet.13 [gcp-1]=$subnet.21 [gcp-2]=$subnet.22)
agents=(aws-3 gcp-2)
mounts=(/etc/rctl /var/lib/rctl /var/lib/rctl-agent /opt/rctl /opt/rctl-agent /run/rctl /var/log/rctl)

for h in "${hosts[@]}"; do
	if ip netns list | grep -qw "ro-$h"; then
		echo "rollout-test: namespace ro-$h exists (another rollout-test running?); not touching it" >&2
		exit 1
	fi
done
if ip link show "$bridge" >/dev/null 2>&1; then
	echo "rollout-test: bridge $bridge exists (another rollout-test running?); not touching it" >&2
	exit 1
fi
if ip route show | grep -q "^$subnet\."; then
	echo "rollout-test: $subnet.0/24 is already routed here; not touching it" >&2
	exit 1
fi

work=$(mktemp -d /tmp/ro-rollout.XXXXXX)
chmod 0755 "$work"
created_dirs=()
ns_made=()
bridge_made=0
client_pid=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ -n "$client_pid" ] && kill -0 "$client_pid" 2>/dev/null; then kill -TERM "$client_pid"; wait "$client_pid" 2>/dev/null; fi
	# ssh connection masters Ansible left (ControlPersist), by their sockets.
	for s in "$work"/cp/*; do
		[ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1
	done
	# Every process inside our namespaces is ours (sshd, the supervisors,
	# rctl serve, the agents): SIGTERM, a grace period, then SIGKILL.
	for ns in "${ns_made[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
	done
	for _ in $(seq 1 50); do
		left=0
		for ns in "${ns_made[@]}"; do [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && left=1; done
		[ $left = 0 ] && break
		sleep 0.2
	done
	for ns in "${ns_made[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	sleep 0.2
	# The bind mounts lived only in the sshds' private mount namespaces,
	# gone with their last process.
	for ns in "${ns_made[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ $bridge_made = 1 ] && ip link del "$bridge" 2>/dev/null
	for d in "${created_dirs[@]}"; do rmdir "$d" 2>/dev/null; done
	if [ -n "${RO_KEEP:-}" ]; then
		mkdir -p "$RO_KEEP" && cp -r "$work"/logs "$work"/hosts "$RO_KEEP"/ 2>/dev/null
		say "logs kept in $RO_KEEP"
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"/{logs,cp,ssh,rel/old,rel/new,wheels/deps,hosts}

# --- sshd -------------------------------------------------------------------
if [ ! -x /usr/sbin/sshd ]; then
	say "installing openssh-server (Debian)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >"$work/logs/apt.log" 2>&1
fi
# The privilege separation directory sshd needs (systemd makes it at boot).
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd && created_dirs+=(/run/sshd); fi

# --- builds: N-1 (0.9.0) and N (this build) -------------------------------------
say "building rctl 0.9.0 (N-1), the agent wheels and the write client"
(cd "$root" && "$GO" build -ldflags "-X github.com/rctl-dev/rctl/cli.Version=0.9.0" -o "$work/rel/old/rctl" .)
cp "$RCTL_BIN" "$work/rel/new/rctl"
new_version=$("$work/rel/new/rctl" version | awk '{print $NF}')
(cd "$root" && "$GO" build -o "$work/writeclient" ./ansible/test/writeclient)

agent_wheel() { # VERSION OUTDIR: the agent stamped with VERSION, as packaging/agent/build.sh does
	local src="$work/agent-src-$1"
	mkdir -p "$src"
	tar -C "$root/agent" --exclude=./.venv --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache \
		--exclude=.pytest_cache --exclude='*.egg-info' --exclude=./build --exclude=./dist -cf - . | tar -C "$src" -xf -
	sed -i "s/^__version__ = \"[^\"]*\"$/__version__ = \"$1\"/" "$src/src/rctl_agent/__init__.py"
	grep -q "^__version__ = \"$1\"$" "$src/src/rctl_agent/__init__.py"
	"$ANSIBLE_VENV/bin/pip" wheel --quiet --no-deps -w "$2" "$src" >"$work/logs/wheel-$1.log" 2>&1
}
agent_wheel 0.9.0 "$work/rel/old"
agent_wheel 1.0.0 "$work/rel/new"
# msgpack, the agent's one dependency, as a wheel the hosts install offline
# (downloaded once into .tools/rollout-wheels).
wheels_cache=$root/.tools/rollout-wheels
if ! ls "$wheels_cache"/msgpack-*.whl >/dev/null 2>&1; then
	"$ANSIBLE_VENV/bin/pip" download --quiet --only-binary=:all: -d "$wheels_cache" 'msgpack==1.2.4' >"$work/logs/pip-download.log" 2>&1
fi
cp "$wheels_cache"/msgpack-*.whl "$work/wheels/deps/"

# --- network and hosts -------------------------------------------------------------
say "creating 5 hosts (network namespaces ro-*, bridge $bridge, sshd each)"
ip link add "$bridge" type bridge
bridge_made=1
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/id" -C rollout-test
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key" -C rollout-test-host
cp "$work/ssh/id.pub" "$work/ssh/authorized_keys"
chmod 0600 "$work/ssh/authorized_keys"
for m in "${mounts[@]}"; do
	if [ ! -e "$m" ]; then mkdir -p "$m" && created_dirs+=("$m"); fi
done
for h in "${hosts[@]}"; do
	ns=ro-$h
	ip netns add "$ns"
	ns_made+=("$ns")
	ip link add "ro-$h-v" type veth peer name eth0 netns "$ns"
	ip link set "ro-$h-v" master "$bridge" up
	ip -n "$ns" addr add "${ip[$h]}/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	hd=$work/hosts/$h
	binds=""
	for m in "${mounts[@]}"; do
		d=$hd/root$m
		mkdir -p "$d"
		binds="$binds mount --bind '$d' '$m' &&"
	done
	cat >"$hd/sshd_config" <<-EOF
		ListenAddress ${ip[$h]}
		Port 22
		HostKey $work/ssh/host_key
		PidFile $hd/sshd.pid
		AuthorizedKeysFile $work/ssh/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		MaxStartups 50:30:100
		MaxSessions 50
		Subsystem sftp internal-sftp
		LogLevel ERROR
	EOF
	# The host's own view of its directories, for sshd and every session.
	ip netns exec "$ns" unshare -m --propagation private \
		sh -c "$binds exec /usr/sbin/sshd -D -f '$hd/sshd_config' -E '$hd/sshd.log'" &
done
for h in "${hosts[@]}"; do
	for _ in $(seq 1 100); do
		if ssh -q -i "$work/ssh/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
			-o ConnectTimeout=2 "root@${ip[$h]}" "test -d /opt/rctl && grep -q ' /etc/rctl ' /proc/self/mountinfo" 2>/dev/null; then
			continue 2
		fi
		sleep 0.2
	done
	echo "rollout-test: sshd on $h (${ip[$h]}) does not answer" >&2
	cat "$work/hosts/$h/sshd.log" >&2 || true
	exit 1
done

export ANSIBLE_CONFIG=$root/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP=$work/ansible-local ANSIBLE_HOME=$work/ansible-home

# --- inventory ---------------------------------------------------------------------
# The inventory is what operators get from Terraform: terraform/tf-inventory.py
# run on the recorded `terraform output -json` of terraform/examples/3aws-2gcp
# (terraform/testdata/output.json: 3 AWS + 2 GCP servers, agents on aws-3 and
# gcp-2) with one edit, its addresses replaced by the test hosts'. The test's
# own settings (ssh key, root, process mode, local builds) go in a second
# inventory source, as docs/deploy.md tells operators to do with theirs.
inv=$work/inventory.yml
settings=$work/settings.yml
tf_output=$work/tf-output.json
ip_map=""
for h in "${hosts[@]}"; do ip_map="$ip_map $h=${ip[$h]}"; done
# shellcheck disable=SC2086 # one argument per host
"$ANSIBLE_VENV/bin/python" - "$root/terraform/testdata/output.json" "$tf_output" $ip_map <<'PY'
"""Replace every server address in a recorded `terraform output -json` document."""
import json
import sys

src, dst, pairs = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
doc = json.load(open(src))
servers = doc["rctl_servers"]["value"]
if sorted(s["id"] for s in servers) != sorted(pairs):
    sys.exit(f"rollout-test: {src} has servers {sorted(s['id'] for s in servers)}, the test hosts are {sorted(pairs)}")
addr = {}
for s in servers:
    for k in ("address", "public_ip", "private_ip"):
        addr[s[k]] = pairs[s["id"]]


def subst(v):
    if isinstance(v, dict):
        return {k: subst(x) for k, x in v.items()}
    if isinstance(v, list):
        return [subst(x) for x in v]
    if isinstance(v, str):
        ip, slash, rest = v.partition("/")
        return addr.get(ip, ip) + slash + rest
    return v


json.dump(subst(doc), open(dst, "w"), indent=2)
PY
"$ANSIBLE_VENV/bin/python" "$root/terraform/tf-inventory.py" "$tf_output" -o "$inv"
{
	echo "all:"
	echo "  vars:"
	echo "    ansible_user: root"
	echo "    ansible_ssh_private_key_file: $work/ssh/id"
	echo "    ansible_ssh_common_args: >-"
	echo "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
	echo "      -o ControlMaster=auto -o ControlPersist=600s -o ControlPath=$work/cp/%C"
	echo "    ansible_python_interpreter: /usr/bin/python3"
	echo "    rctl_install_method: binary"
	echo "    rctl_service_manager: process"
	echo "    rctl_local_bin: $RCTL_BIN"
	echo "    rctl_pki_dir: $work/pki"
	echo "    rctl_timing: wan"
	echo "    rctl_agent_deps_src: $work/wheels/deps"
	echo "    # The five hosts share one /etc/passwd: run as root rather than add users."
	echo "    rctl_user: root"
	echo "    rctl_group: root"
	echo "    rctl_create_user: false"
	echo "    rctl_agent_user: root"
	echo "    rctl_agent_group: root"
	echo "    rctl_agent_create_user: false"
	echo "    rctl_agent_drain_timeout: 5"
	echo "    rctl_health_wait: 180s"
} >"$settings"
# The generated inventory must name exactly the test hosts, with their
# addresses and labels, and the agents.
"$ANSIBLE_VENV/bin/ansible-inventory" -i "$inv" -i "$settings" --list >"$work/inventory.json"
want_hosts="${hosts[*]}" want_agents="${agents[*]}" want_ips="$ip_map" \
	"$ANSIBLE_VENV/bin/python" - "$work/inventory.json" <<'PY'
import json
import os
import sys

inv = json.load(open(sys.argv[1]))
hv = inv["_meta"]["hostvars"]
want_ips = dict(a.split("=", 1) for a in os.environ["want_ips"].split())
problems = []
for group, want in (("rctl_servers", "want_hosts"), ("rctl_agents", "want_agents")):
    got = sorted(inv.get(group, {}).get("hosts", []))
    if got != sorted(os.environ[want].split()):
        problems.append(f"group {group} is {got}, want {sorted(os.environ[want].split())}")
for h, ip in want_ips.items():
    v = hv.get(h, {})
    cloud = h.rsplit("-", 1)[0]
    if (v.get("ansible_host"), v.get("rctl_address"), v.get("cloud"), v.get("ansible_user")) != (ip, ip, cloud, "root"):
        problems.append(f"host {h} has {v}")
if problems:
    sys.exit("rollout-test: the generated inventory is not the test's: " + "; ".join(problems))
PY
say "inventory: terraform/tf-inventory.py from terraform/testdata/output.json (addresses replaced) + test settings"
old_vars="rctl_binary_src=$work/rel/old/rctl rctl_agent_wheel_src=$(ls "$work"/rel/old/rctl_agent-*.whl)"
new_vars="rctl_binary_src=$work/rel/new/rctl rctl_agent_wheel_src=$(ls "$work"/rel/new/rctl_agent-*.whl)"

playbook() { # LOGNAME PLAYBOOK EXTRA-VARS
	local log=$work/logs/$1.log
	if ! (cd "$root/ansible" && "$ANSIBLE_VENV/bin/ansible-playbook" -i "$inv" -i "$settings" -e "$3" "$2") >"$log" 2>&1; then
		echo "rollout-test: ansible-playbook $2 failed; the end of its log:" >&2
		tail -60 "$log" >&2
		return 1
	fi
}
recap_changed() { # the sum of changed=N over PLAY RECAP
	sed -n '/^PLAY RECAP/,$p' "$1" | grep -o 'changed=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}'
}
cli() { # rctl on the control host as the playbooks' operator
	RCTL_ADDR=$(printf '%s:50051,' "${ip[@]}" | sed 's/,$//') RCTL_TLS_CA=$work/pki/ca/ca.crt \
		RCTL_TLS_CERT=$work/pki/operator/ansible.crt RCTL_TLS_KEY=$work/pki/operator/ansible.key \
		RCTL_TOKEN=$(cat "$work/pki/bootstrap.secret") "$RCTL_BIN" "$@"
}

# --- 1. first rollout of N-1 ---------------------------------------------------
say "site.yml: release 0.9.0 onto 5 servers + 2 agents (TLS, ACLs)"
playbook site-1 site.yml "$old_vars"
say "site.yml done: $(sed -n '/^PLAY RECAP/,$p' "$work/logs/site-1.log" | grep -c 'ok=') hosts in the recap"
cli members >&2
cli nodes >&2

# --- 2. idempotency -------------------------------------------------------------
say "site.yml again (must change nothing)"
playbook site-2 site.yml "$old_vars"
changed_second=$(recap_changed "$work/logs/site-2.log")
if [ "$changed_second" != 0 ]; then
	echo "rollout-test: the second run changed something:" >&2
	grep -E '^changed:' "$work/logs/site-2.log" >&2 || true
fi

# --- 2b. a changed setting: servers restart one at a time, gated ----------------
say "site.yml with a changed setting (rolling restart of the servers)"
playbook site-3 site.yml "$old_vars rctl_log_level=warn"
restarted=$(grep -c '^TASK \[rctl_server : Start rctl under rctl-supervise\]' "$work/logs/site-3.log" || true)
if [ "$restarted" != "${#hosts[@]}" ]; then
	echo "rollout-test: the changed setting restarted $restarted servers, want ${#hosts[@]}" >&2
	exit 1
fi
cli operator health --min-voters 5 >/dev/null

# --- 3. rolling upgrade under writes ----------------------------------------------
say "upgrade.yml to $new_version while the write client writes"
addrs=$(printf '%s:50051,' "${ip[@]}" | sed 's/,$//')
"$work/writeclient" --addr "$addrs" --tls-ca "$work/pki/ca/ca.crt" \
	--tls-cert "$work/pki/operator/ansible.crt" --tls-key "$work/pki/operator/ansible.key" \
	--token-file "$work/pki/bootstrap.secret" --prefix "ro-$$" --ready-file "$work/client.ready" \
	>"$work/logs/writeclient.json" 2>"$work/logs/writeclient.err" &
client_pid=$!
for _ in $(seq 1 150); do [ -e "$work/client.ready" ] && break; sleep 0.2; done
[ -e "$work/client.ready" ] || { echo "rollout-test: the write client got no write acknowledged" >&2; cat "$work/logs/writeclient.err" >&2; exit 1; }
upgrade_rc=0
playbook upgrade upgrade.yml "$new_vars" || upgrade_rc=1
sleep 3
kill -TERM "$client_pid"
wait "$client_pid" || { echo "rollout-test: write client failed" >&2; cat "$work/logs/writeclient.err" >&2; }
client_pid=""
res=$(cat "$work/logs/writeclient.json")
say "write client: $res"

# --- 4. every server on the new version ------------------------------------------------
versions_ok=1
for h in "${hosts[@]}"; do
	v=$(cli status --addr "${ip[$h]}:50051" -o json | "$ANSIBLE_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["version"])' || echo "?")
	if [ "$v" != "$new_version" ]; then
		echo "rollout-test: $h runs $v, want $new_version" >&2
		versions_ok=0
	fi
done
cli operator health >&2 || versions_ok=0
cli nodes >&2 || true

field() { echo "$res" | "$ANSIBLE_VENV/bin/python" -c "import json,sys; print(json.load(sys.stdin).get('$1', -1))"; }
lost=$(field lost) failed=$(field failed) gap=$(field max_write_gap_ms) changes=$(field leader_changes) acked=$(field acknowledged)
say "acknowledged writes: $acked; upgrade playbook exit: $upgrade_rc; all servers on $new_version: $versions_ok; total $(($(date +%s) - t0))s"
echo "lost_writes=$lost failed_writes=$failed max_write_gap_ms=$gap leader_changes=$changes changed_on_second_run=$changed_second"
[ "$upgrade_rc" = 0 ] && [ "$versions_ok" = 1 ] && [ "$acked" -gt 0 ] && [ "$lost" = 0 ] && [ "$failed" = 0 ] &&
	[ "$gap" -lt 2000 ] && [ "$changed_second" = 0 ]
