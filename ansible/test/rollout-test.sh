#!/usr/bin/env bash
# ansible/test/rollout-test.sh: make rollout-test (needs root).
#
# Eight test hosts: six servers, 3 "aws" + 3 "gcp" (gcp-3 a Raft
# non-voter), and two worker VMs running the node agent, each a network
# namespace (ro-aws-1 …) on a bridge (ro-br0, 10.77.0.0/24) with its own
# sshd (Debian's openssh-server) and its own /etc/rctl, /var/lib/rctl, /var/lib/rctl-agent,
# /opt/rctl, /opt/rctl-agent, /run/rctl and /var/log/rctl: sshd runs in a
# private mount namespace where those paths are bind mounts of per-host
# directories, so every ssh session (and every process it starts) sees the
# host's own files. Ansible reaches them over ssh with a throwaway key.
#
#   0. The inventory comes from Terraform's outputs: terraform/tf-inventory.py
#      on terraform/testdata/output-3aws-3gcp.json (the 3aws-3gcp example:
#      five voters, gcp-3 a non-voter in rctl_nonvoters, agents on worker-1
#      and worker-2) with the test hosts' addresses in place of the
#      recorded ones.
#   1. site.yml installs release N-1 (this source stamped 0.9.0, agent 0.9.0)
#      with the binary install method and rctl_service_manager=process, TLS
#      and ACLs on: the five voters bootstrap the cluster, gcp-3 joins it as
#      a non-voter, the two workers run an agent. rctl members must list
#      five voters and gcp-3 as a non-voter.
#   2. site.yml again, with one of the servers' settings changed
#      (rctl_log_level): the six servers restart one at a time behind the
#      health gate (the non-voter too, which rejoins with its raft state),
#      and nothing else may change: the only changed tasks are each
#      server's rctl.env and its stop and start, once per server, and the
#      agents' hosts and the control host change nothing. (Until issue 15
#      this was two runs, an unchanged one that had to change nothing and
#      then the changed setting; one run checks the same tasks for a
#      second run's changes, except the rctl.env template, whose change is
#      the point, and costs 95 s less.)
#   3. upgrade.yml to this build while writeclient adds tasks (unique ids,
#      retried with the same id) and watches the leader: the non-voter
#      first, then the voting followers, the leader last, then the agents.
#   4. Every acknowledged write is read back; every server runs the new
#      version; gcp-3 is still a non-voter and has applied the same log as
#      the voters (equal applied index, and its own --stale task list is the
#      voters' list).
#
# Prints one line:
#   lost_writes=N failed_writes=N max_write_gap_ms=N leader_changes=N unexpected_changes_on_second_run=N nonvoter_ok=0|1
# and exits non-zero unless lost=0, failed=0, max gap < 2000 ms,
# unexpected_changes_on_second_run=0 and nonvoter_ok=1. Then the seconds each phase
# took, and where the playbooks' time went (slowest tasks) is in
# logs/profile.txt (ansible/test/profile/rollout_profile.py; RO_KEEP keeps
# it). Everything it creates (namespaces, bridge,
# processes, mounts, temporary files) is removed on exit (and, should a run
# be killed before that, by the next run, which holds a lock while it
# runs and so knows such hosts are left over); it stops only
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

phase_t=$t0
phases=""
phase_done() { # NAME: record the seconds since the previous phase ended
	local now
	now=$(date +%s)
	phases="$phases $1=$((now - phase_t))s"
	phase_t=$now
}

bridge=ro-br0
subnet=10.77.0
voters=(aws-1 aws-2 aws-3 gcp-1 gcp-2)
nonvoters=(gcp-3)
servers=("${voters[@]}" "${nonvoters[@]}")
agents=(worker-1 worker-2)
hosts=("${servers[@]}" "${agents[@]}")
declare -A ip=([aws-1]=$subnet.11 [aws-2]=$subnet.12 [aws-3]=$subnet.13 [gcp-1]=$subnet.21 [gcp-2]=$subnet.22
	[gcp-3]=$subnet.23 [worker-1]=$subnet.41 [worker-2]=$subnet.42)
mounts=(/etc/rctl /var/lib/rctl /var/lib/rctl-agent /opt/rctl /opt/rctl-agent /run/rctl /var/log/rctl)

# One run at a time: a run holds this lock until it exits (the kernel
# drops it when the process dies, however it dies).
lock=/run/lock/rctl-rollout-test.lock
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
if ! flock -n 9; then
	echo "rollout-test: another rollout-test is running (it holds $lock); not touching its hosts" >&2
	exit 1
fi
# With the lock ours, test hosts that exist were left by a run that was
# killed before its cleanup ran (SIGKILL): every process in them is that
# run's, so they are removed as its cleanup would have.
stale=()
for h in "${hosts[@]}"; do
	ip netns list | grep -qw "ro-$h" && stale+=("ro-$h")
done
if [ ${#stale[@]} -gt 0 ] || ip link show "$bridge" >/dev/null 2>&1; then
	echo "rollout-test: removing hosts left by a killed run: ${stale[*]:-} $bridge" >&2
	for ns in "${stale[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
	done
	for ns in "${stale[@]}"; do
		for i in $(seq 1 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
		ip netns del "$ns"
	done
	ip link del "$bridge" 2>/dev/null || true
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
build_pid=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ -n "$client_pid" ] && kill -0 "$client_pid" 2>/dev/null; then kill -TERM "$client_pid"; wait "$client_pid" 2>/dev/null; fi
	# The builds (a subshell of ours and the go/pip it runs, in its own
	# process group: set -m below).
	if [ -n "$build_pid" ] && kill -0 "$build_pid" 2>/dev/null; then kill -TERM -- "-$build_pid" 2>/dev/null; wait "$build_pid" 2>/dev/null; fi
	# ssh connection masters Ansible left (ControlPersist), by their sockets.
	for s in "$work"/cp/*; do
		[ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1
	done
	# Every process inside our namespaces is ours (sshd, the supervisors,
	# rctl serve, the agents): SIGTERM, a short grace period (servers that
	# all stop at once would each spend seconds offering leadership to
	# the others, agents draining: nothing the test checks), then SIGKILL
	# until none is left.
	for ns in "${ns_made[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
	done
	for i in $(seq 1 40); do
		left=0
		for ns in "${ns_made[@]}"; do [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && left=1; done
		[ $left = 0 ] && break
		if [ "$i" -gt 10 ]; then
			for ns in "${ns_made[@]}"; do
				for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			done
		fi
		sleep 0.2
	done
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
# In the background while the hosts are made (waited for before the
# inventory); their output goes to logs/build.log.
say "building rctl 0.9.0 (N-1), the agent wheels and the write client (in the background)"
cp "$RCTL_BIN" "$work/rel/new/rctl"
new_version=$("$work/rel/new/rctl" version | awk '{print $NF}')

agent_wheel() { # VERSION OUTDIR: the agent stamped with VERSION, as packaging/agent/build.sh does
	local src="$work/agent-src-$1"
	mkdir -p "$src"
	tar -C "$root/agent" --exclude=./.venv --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache \
		--exclude=.pytest_cache --exclude='*.egg-info' --exclude=./build --exclude=./dist -cf - . | tar -C "$src" -xf -
	sed -i "s/^__version__ = \"[^\"]*\"$/__version__ = \"$1\"/" "$src/src/rctl_agent/__init__.py"
	grep -q "^__version__ = \"$1\"$" "$src/src/rctl_agent/__init__.py"
	"$ANSIBLE_VENV/bin/pip" wheel --quiet --no-deps -w "$2" "$src" >"$work/logs/wheel-$1.log" 2>&1
}
builds() {
	(cd "$root" && "$GO" build -ldflags "-X github.com/rctl-dev/rctl/cli.Version=0.9.0" -o "$work/rel/old/rctl" .)
	(cd "$root" && "$GO" build -o "$work/writeclient" ./ansible/test/writeclient)
	agent_wheel 0.9.0 "$work/rel/old"
	agent_wheel 1.0.0 "$work/rel/new"
	# msgpack, the agent's one dependency, as a wheel the hosts install
	# offline (downloaded once into .tools/rollout-wheels).
	local wheels_cache=$root/.tools/rollout-wheels
	if ! ls "$wheels_cache"/msgpack-*.whl >/dev/null 2>&1; then
		"$ANSIBLE_VENV/bin/pip" download --quiet --only-binary=:all: -d "$wheels_cache" 'msgpack==1.2.4' >"$work/logs/pip-download.log" 2>&1
	fi
	cp "$wheels_cache"/msgpack-*.whl "$work/wheels/deps/"
}
set -m # the builds in a process group of their own (cleanup stops it as one)
builds >"$work/logs/build.log" 2>&1 &
build_pid=$!
set +m

# --- network and hosts -------------------------------------------------------------
say "creating ${#hosts[@]} hosts (network namespaces ro-*, bridge $bridge, sshd each)"
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

if ! wait "$build_pid"; then
	build_pid=""
	echo "rollout-test: the builds failed:" >&2
	tail -40 "$work/logs/build.log" >&2
	exit 1
fi
build_pid=""
phase_done setup

export ANSIBLE_CONFIG=$root/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP=$work/ansible-local ANSIBLE_HOME=$work/ansible-home
# Where the playbooks' time goes: ansible/test/profile/rollout_profile.py
# appends each playbook's play and slowest task times to logs/profile.txt.
export ANSIBLE_CALLBACK_PLUGINS=$root/ansible/test/profile ANSIBLE_CALLBACKS_ENABLED=rollout_profile
export RO_PROFILE_FILE=$work/logs/profile.txt

# --- inventory ---------------------------------------------------------------------
# The inventory is what operators get from Terraform: terraform/tf-inventory.py
# run on the recorded `terraform output -json` of terraform/examples/3aws-3gcp
# (terraform/testdata/output-3aws-3gcp.json: 3 AWS + 3 GCP servers, gcp-3 with
# voter = false, agents on the worker VMs worker-1 and worker-2) with one
# edit, its addresses replaced by the test hosts'. The test's own settings
# (ssh key, root, process mode, local builds) go in a second inventory
# source, as docs/deploy.md tells operators to do with theirs.
inv=$work/inventory.yml
settings=$work/settings.yml
tf_output=$work/tf-output.json
tf_recorded=$root/terraform/testdata/output-3aws-3gcp.json
ip_map=""
for h in "${hosts[@]}"; do ip_map="$ip_map $h=${ip[$h]}"; done
# shellcheck disable=SC2086 # one argument per host
"$ANSIBLE_VENV/bin/python" - "$tf_recorded" "$tf_output" $ip_map <<'PY'
"""Replace every server and worker address in a recorded `terraform output -json` document."""
import json
import sys

src, dst, pairs = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
doc = json.load(open(src))
servers = doc["rctl_servers"]["value"]
workers = [a for a in doc["rctl_agents"]["value"] if a.get("address")]
ids = sorted(s["id"] for s in servers + workers)
if ids != sorted(pairs):
    sys.exit(f"rollout-test: {src} has servers and workers {ids}, the test hosts are {sorted(pairs)}")
addr = {}
for s in servers:
    for k in ("address", "public_ip", "private_ip"):
        addr[s[k]] = pairs[s["id"]]
for a in workers:
    addr[a["address"]] = pairs[a["id"]]


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
	echo "    # The test hosts share one /etc/passwd: run as root rather than add users."
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
# addresses and labels: the voters, the non-voter and the agents' workers.
"$ANSIBLE_VENV/bin/ansible-inventory" -i "$inv" -i "$settings" --list >"$work/inventory.json"
want_voters="${voters[*]}" want_nonvoters="${nonvoters[*]}" want_agents="${agents[*]}" want_ips="$ip_map" \
	"$ANSIBLE_VENV/bin/python" - "$work/inventory.json" <<'PY'
import json
import os
import sys

inv = json.load(open(sys.argv[1]))
hv = inv["_meta"]["hostvars"]
want_ips = dict(a.split("=", 1) for a in os.environ["want_ips"].split())
nonvoters = os.environ["want_nonvoters"].split()
agents = os.environ["want_agents"].split()
problems = []
for group, want in (("rctl_servers", "want_voters"), ("rctl_nonvoters", "want_nonvoters"), ("rctl_agents", "want_agents")):
    got = sorted(inv.get(group, {}).get("hosts", []))
    if got != sorted(os.environ[want].split()):
        problems.append(f"group {group} is {got}, want {sorted(os.environ[want].split())}")
for h, ip in want_ips.items():
    v = hv.get(h, {})
    cloud = "aws" if h in ("aws-1", "aws-2", "aws-3", "worker-1") else "gcp"
    want = (ip, None if h in agents else ip, cloud, "root", True if h in nonvoters else None)
    if (v.get("ansible_host"), v.get("rctl_address"), v.get("cloud"), v.get("ansible_user"), v.get("rctl_nonvoter")) != want:
        problems.append(f"host {h} has {v}")
if problems:
    sys.exit("rollout-test: the generated inventory is not the test's: " + "; ".join(problems))
PY
say "inventory: terraform/tf-inventory.py from terraform/testdata/output-3aws-3gcp.json (addresses replaced) + test settings"
old_vars="rctl_binary_src=$work/rel/old/rctl rctl_agent_wheel_src=$(ls "$work"/rel/old/rctl_agent-*.whl)"
new_vars="rctl_binary_src=$work/rel/new/rctl rctl_agent_wheel_src=$(ls "$work"/rel/new/rctl_agent-*.whl)"

playbook() { # LOGNAME PLAYBOOK EXTRA-VARS [ANSIBLE-PLAYBOOK ARGS...]
	local log=$work/logs/$1.log
	if ! (cd "$root/ansible" && RO_PROFILE_LABEL="$1 ($2)" "$ANSIBLE_VENV/bin/ansible-playbook" -i "$inv" -i "$settings" -e "$3" "${@:4}" "$2") >"$log" 2>&1; then
		echo "rollout-test: ansible-playbook $2 failed; the end of its log:" >&2
		tail -60 "$log" >&2
		lost_mountpoints
		return 1
	fi
}
# The hosts' directories are bind mounts on this machine's /etc/rctl, … in
# the sshds' mount namespaces: if another process removes one of those
# directories here (make package-test purges the rctl package, which takes
# /etc/rctl and /var/lib/rctl with it), the kernel detaches that mount from
# every host and they see an empty path. Say so when a playbook fails.
lost_mountpoints() {
	local m
	for m in "${mounts[@]}"; do
		[ -d "$m" ] || echo "rollout-test: $m was removed on this machine during the test (by make package-test's dpkg --purge?), which unmounted it on every test host: do not run the two at once" >&2
	done
}
voter_addrs=$(for h in "${voters[@]}"; do printf '%s:50051,' "${ip[$h]}"; done | sed 's/,$//')
cli() { # rctl on the control host as the playbooks' operator
	RCTL_ADDR=$voter_addrs RCTL_TLS_CA=$work/pki/ca/ca.crt \
		RCTL_TLS_CERT=$work/pki/operator/ansible.crt RCTL_TLS_KEY=$work/pki/operator/ansible.key \
		RCTL_TOKEN=$(cat "$work/pki/bootstrap.secret") "$RCTL_BIN" "$@"
}
py() { "$ANSIBLE_VENV/bin/python" "$@"; }
# check_members: the leader's member list has exactly the voters as voters
# and the non-voters as non-voters, every one of them following a leader.
check_members() {
	cli members -o json >"$work/members.json" || return 1
	want_voters="${voters[*]}" want_nonvoters="${nonvoters[*]}" py - "$work/members.json" <<-'PY'
		import json
		import os
		import sys

		members = json.load(open(sys.argv[1]))["members"]
		got = {m["id"]: m for m in members}
		problems = []
		for ids, suffrage in ((os.environ["want_voters"], "voter"), (os.environ["want_nonvoters"], "nonvoter")):
		    for i in ids.split():
		        m = got.pop(i, None)
		        if m is None:
		            problems.append(f"{i} is not a member")
		        elif m["suffrage"] != suffrage or m["state"] not in ("leader", "follower"):
		            problems.append(f"{i} is a {m['suffrage']} in state {m['state']}, want a {suffrage} that answers")
		problems += [f"{i} is a member but no test host" for i in got]
		if problems:
		    sys.exit("rollout-test: members: " + "; ".join(problems))
	PY
}

# --- 1. first rollout of N-1 ---------------------------------------------------
say "site.yml: release 0.9.0 onto ${#voters[@]} voters, then ${#nonvoters[@]} non-voter, + ${#agents[@]} agents (TLS, ACLs)"
playbook site-1 site.yml "$old_vars"
say "site.yml done: $(sed -n '/^PLAY RECAP/,$p' "$work/logs/site-1.log" | grep -c 'ok=') hosts in the recap"
cli members >&2
cli nodes >&2
check_members
phase_done site-1

# --- 2. a second run, with a changed setting: only that setting changes ------
# The setting is the servers' (rctl_log_level). Each server must change its
# rctl.env and restart (stop, start) once, one at a time; every other task,
# on every host, must report no change (the second-run idempotency check).
say "site.yml again with a changed setting: only rctl.env and a rolling restart of the ${#servers[@]} servers may change"
playbook site-2 site.yml "$old_vars rctl_log_level=warn"
unexpected=$(want_servers="${servers[*]}" py - "$work/logs/site-2.log" <<-'PY'
	import collections
	import os
	import re
	import sys

	# changed: [host] lines under their TASK/RUNNING HANDLER header, and the recap.
	allowed = {"rctl_server : Write rctl.env", "rctl_server : Stop rctl under rctl-supervise",
	           "rctl_server : Start rctl under rctl-supervise"}
	servers = os.environ["want_servers"].split()
	task, changed, recap = "", collections.Counter(), {}
	in_recap = False
	for line in open(sys.argv[1], encoding="utf-8"):
	    if m := re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*", line):
	        task = m.group(1)
	    elif m := re.match(r"^changed: \[([^\]]+)\]", line):
	        changed[(task, m.group(1).split(" -> ")[0])] += 1
	    elif line.startswith("PLAY RECAP"):
	        in_recap = True
	    elif in_recap and (m := re.match(r"^(\S+)\s+:.*changed=(\d+)", line)):
	        recap[m.group(1)] = int(m.group(2))
	problems = [f"{h}: {t} changed" for (t, h), n in changed.items() if t not in allowed or h not in servers]
	problems += [f"{h}: {t} changed {n} times" for (t, h), n in changed.items() if t in allowed and n > 1]
	problems += [f"{h}: {t} did not change" for h in servers for t in sorted(allowed) if (t, h) not in changed]
	want = {h: len(allowed) if h in servers else 0 for h in recap}
	problems += [f"{h}: recap says changed={n}, want {want[h]}" for h, n in recap.items() if n != want[h]]
	if not recap:
	    problems.append("no PLAY RECAP in the log")
	for p in problems:
	    print("rollout-test: second run: " + p, file=sys.stderr)
	print(len(problems))
	PY
)
# One at a time: a serial play prints the task's header once per batch.
restarted=$(grep -c '^TASK \[rctl_server : Start rctl under rctl-supervise\]' "$work/logs/site-2.log" || true)
if [ "$restarted" != "${#servers[@]}" ]; then
	echo "rollout-test: the changed setting restarted the servers in $restarted batches, want ${#servers[@]} (one at a time)" >&2
	exit 1
fi
for h in "${servers[@]}"; do
	grep -q "^RCTL_LOG_LEVEL=warn$" "$work/hosts/$h/root/etc/rctl/rctl.env" ||
		{ echo "rollout-test: $h did not get the changed setting" >&2; exit 1; }
done
# The non-voter restarted with RCTL_JOIN and its raft state: still the same
# member, no second one, and not a voter.
check_members
cli operator health --min-voters "${#voters[@]}" >/dev/null
phase_done site-2

# --- 3. rolling upgrade under writes ----------------------------------------------
say "upgrade.yml to $new_version while the write client writes"
"$work/writeclient" --addr "$voter_addrs" --tls-ca "$work/pki/ca/ca.crt" \
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
phase_done upgrade

# --- 4. every server on the new version, the non-voter in step ---------------------
versions_ok=1
for h in "${servers[@]}"; do
	v=$(cli status --addr "${ip[$h]}:50051" -o json | py -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || echo "?")
	if [ "$v" != "$new_version" ]; then
		echo "rollout-test: $h runs $v, want $new_version" >&2
		versions_ok=0
	fi
done
for h in "${nonvoters[@]}"; do
	# upgrade.yml took the non-voter through its own serial play.
	if ! sed -n '/^PLAY \[Upgrade the non-voters/,/^PLAY \[/p' "$work/logs/upgrade.log" | grep -q "^changed: \[$h"; then
		echo "rollout-test: upgrade.yml did not upgrade $h in its non-voter play" >&2
		versions_ok=0
	fi
done
cli operator health --min-voters "${#voters[@]}" >&2 || versions_ok=0
cli nodes >&2 || true

# The non-voter has applied the same log as the voters: once the writes
# stopped every server reaches the same applied index, and the non-voter's
# own (--stale) task list is the leader's list.
nonvoter_ok=0 applied=""
if check_members; then
	for _ in $(seq 1 30); do
		applied=$(for h in "${servers[@]}"; do
			cli status --addr "${ip[$h]}:50051" -o json | py -c 'import json,sys; print(json.load(sys.stdin)["applied_index"])' 2>/dev/null || echo "?"
		done | sort -u)
		if [ "$(echo "$applied" | wc -l)" = 1 ] && [ "$applied" != "?" ]; then
			cli task list -o json >"$work/tasks-leader.json"
			all_same=1
			for h in "${nonvoters[@]}"; do
				cli --addr "${ip[$h]}:50051" task list --stale -o json >"$work/tasks-$h.json"
				cmp -s "$work/tasks-leader.json" "$work/tasks-$h.json" || all_same=0
			done
			if [ $all_same = 1 ]; then
				nonvoter_ok=1
				say "non-voter ${nonvoters[*]}: applied index $applied like every voter; $(py -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/tasks-leader.json") tasks, the same list as the leader's"
				break
			fi
		fi
		sleep 1
	done
fi
[ $nonvoter_ok = 1 ] || echo "rollout-test: the non-voter did not reach the voters' applied index and task list (last: $applied)" >&2
phase_done checks

field() { echo "$res" | py -c "import json,sys; print(json.load(sys.stdin).get('$1', -1))"; }
lost=$(field lost) failed=$(field failed) gap=$(field max_write_gap_ms) changes=$(field leader_changes) acked=$(field acknowledged)
say "acknowledged writes: $acked; upgrade playbook exit: $upgrade_rc; all servers on $new_version: $versions_ok; total $(($(date +%s) - t0))s"
say "phases:$phases"
if [ -e "$RO_PROFILE_FILE" ]; then
	# Each playbook's total and plays (the slowest tasks are in logs/profile.txt).
	grep -E '^ *[0-9.]+s +(playbook|  play) ' "$RO_PROFILE_FILE" >&2 || true
fi
echo "lost_writes=$lost failed_writes=$failed max_write_gap_ms=$gap leader_changes=$changes unexpected_changes_on_second_run=$unexpected nonvoter_ok=$nonvoter_ok"
[ "$upgrade_rc" = 0 ] && [ "$versions_ok" = 1 ] && [ "$acked" -gt 0 ] && [ "$lost" = 0 ] && [ "$failed" = 0 ] &&
	[ "$gap" -lt 2000 ] && [ "$unexpected" = 0 ] && [ "$nonvoter_ok" = 1 ]
