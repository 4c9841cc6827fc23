#!/usr/bin/env bash
# packaging/test/package-test.sh (make package-test): builds the release
# artifacts offline with goreleaser and checks the packages, as root where
# needed (dpkg -i, users). Ends with one line of results.
#
#   1. goreleaser check; goreleaser release --snapshot --clean (go.mod/go.sum untouched)
#   2. dist/: archives (linux+darwin), deb+rpm for linux amd64/arm64 only, the
#      rctl-agent deb/rpm (arch all), wheel+sdist, checksums.txt that verifies
#   3. the amd64 rctl .deb: files, modes, owners, conffiles, control fields,
#      maintainer scripts present and never starting/restarting the service
#   4. systemd-analyze verify (and security --offline) of both units
#   5. dpkg -i on this machine: users, /var/lib/rctl 0750 rctl:rctl, enabled
#      for boot, `rctl version` = snapshot version, the default env file refuses
#      to start with a clear message; a reinstall (upgrade path) starts or
#      restarts nothing and keeps an edited conffile; purge leaves nothing
#   6. the rctl-agent .deb installs, runs and purges likewise; both units run
#      under a real systemd in a container (packaging/test/sandbox-check.sh)
#   7. the agent: wheel in a fresh venv, sdist rebuilds; `rctl-agent --version`
#      = `rctl version`
# Debian packages it installs when missing (as root): systemd, rpm,
# systemd-container. GORELEASER: default .tools/bin/goreleaser. dist/ is left
# for inspection.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
GORELEASER=${GORELEASER:-$root/.tools/bin/goreleaser}
start=$(date +%s)
tmp=$(mktemp -d /tmp/rctl-package-test.XXXXXX)
checks=0
skipped=()
created_users=()
made_run_systemd=false
current=""

ok() { checks=$((checks + 1)); }
fail() {
	echo "package-test: FAIL${current:+ [$current]}: $*" >&2
	exit 1
}
skip() { skipped+=("$1"); echo "   skipped: $1"; }
step() { current=$1; echo "== $1"; }
need() { # need COND MESSAGE; no pipefail in COND: "… | grep -q" may close the pipe early
	if (set +o pipefail; eval "$1"); then ok; else fail "$2"; fi
}

cleanup() {
	local rc=$?
	set +e
	if [ "$(id -u)" = 0 ]; then
		for p in rctl rctl-agent; do
			if dpkg -s "$p" >/dev/null 2>&1 && [ -f "$tmp/installed-$p" ]; then
				dpkg --purge "$p" >/dev/null 2>&1
			fi
		done
		for u in "${created_users[@]}"; do
			userdel "$u" >/dev/null 2>&1
			getent group "$u" >/dev/null && groupdel "$u" >/dev/null 2>&1
		done
		$made_run_systemd && rmdir /run/systemd/system 2>/dev/null
	fi
	rm -rf "$tmp"
	if [ $rc -ne 0 ]; then
		echo "package-test: FAILED after $(($(date +%s) - start))s, $checks checks passed" >&2
	fi
}
trap cleanup EXIT

is_root=false
[ "$(id -u)" = 0 ] && is_root=true

# ---------------------------------------------------------------------------
step "tools"
[ -x "$GORELEASER" ] || fail "$GORELEASER missing: run make goreleaser (go install github.com/goreleaser/goreleaser/v2@v2.15.1)"
if $is_root && command -v apt-get >/dev/null; then
	missing=""
	command -v systemd-analyze >/dev/null || missing="$missing systemd"
	command -v rpm >/dev/null || missing="$missing rpm"
	command -v systemd-nspawn >/dev/null || missing="$missing systemd-container"
	if [ -n "$missing" ]; then
		echo "   installing Debian packages:$missing"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
fi

# ---------------------------------------------------------------------------
step "goreleaser check + snapshot"
gomod_before=$(sha256sum go.mod go.sum)
"$GORELEASER" check >"$tmp/check.log" 2>&1 || { cat "$tmp/check.log"; fail "goreleaser check"; }
ok
if ! "$GORELEASER" release --snapshot --clean >"$tmp/release.log" 2>&1; then
	tail -40 "$tmp/release.log"
	fail "goreleaser release --snapshot --clean (log above)"
fi
ok
need '[ "$(sha256sum go.mod go.sum)" = "$gomod_before" ]' "the release changed go.mod/go.sum"
# The agent's wheel and sdist are release files next to the packages.
cp .build/agent/dist/* dist/
version=$(python3 -c 'import json; print(json.load(open("dist/metadata.json"))["version"])')
[ -n "$version" ] || fail "no version in dist/metadata.json"
echo "   snapshot version $version"

# ---------------------------------------------------------------------------
step "dist contents"
shopt -s nullglob
debs=(dist/*.deb) rpms=(dist/*.rpm) tgzs=(dist/rctl_*_linux_*.tar.gz dist/rctl_*_darwin_*.tar.gz) whls=(dist/rctl_agent-*.whl) sdists=(dist/rctl_agent-*.tar.gz)
shopt -u nullglob
need '[ ${#debs[@]} = 3 ]' "want 3 .deb (rctl amd64, arm64, rctl-agent all), got: ${debs[*]:-none}"
need '[ ${#rpms[@]} = 3 ]' "want 3 .rpm, got: ${rpms[*]:-none}"
need '[ ${#tgzs[@]} = 4 ]' "want 4 tar.gz archives (linux, darwin x amd64, arm64), got: ${tgzs[*]:-none}"
need '[ ${#whls[@]} = 1 ] && [ ${#sdists[@]} = 1 ]' "want one wheel and one sdist"
for a in linux_amd64 linux_arm64 darwin_amd64 darwin_arm64; do
	need '[ -f "dist/rctl_${version}_${a}.tar.gz" ]' "archive rctl_${version}_${a}.tar.gz missing"
done
need '! ls dist/*darwin*.deb dist/*darwin*.rpm >/dev/null 2>&1' "darwin packages built (archives only)"
deb_amd64=$(ls dist/rctl_*_amd64.deb)
deb_arm64=$(ls dist/rctl_*_arm64.deb)
deb_agent=$(ls dist/rctl-agent_*_all.deb)
need '[ -f "$deb_amd64" ] && [ -f "$deb_arm64" ] && [ -f "$deb_agent" ]' "deb file names"
# Every release file is in checksums.txt, and they verify.
for f in "${debs[@]}" "${rpms[@]}" "${tgzs[@]}" "${whls[@]}" "${sdists[@]}"; do
	need 'grep -q "  $(basename "$f")\$" dist/checksums.txt' "$(basename "$f") not in checksums.txt"
done
(cd dist && sha256sum --quiet -c checksums.txt) || fail "checksums.txt does not verify"
ok
bin=dist/rctl_linux_amd64_v1/rctl
need '[ "$("$bin" version)" = "rctl $version" ]' "rctl version of $bin is '$("$bin" version)', want 'rctl $version'"
need 'go version -m "$bin" | grep -q -- "-tags=hashicorpmetrics"' "binary not built with -tags hashicorpmetrics"

# ---------------------------------------------------------------------------
step "rctl .deb contents"
dpkg-deb -c "$deb_amd64" >"$tmp/deb.list"
dpkg-deb -I "$deb_amd64" >"$tmp/deb.info"
has_file() { # has_file LISTING MODE OWNER PATH
	awk -v m="$2" -v o="$3" -v p="$4" '$1==m && $2==o && $6==p {found=1} END {exit !found}' "$1"
}
need 'has_file "$tmp/deb.list" -rwxr-xr-x root/root ./usr/bin/rctl' "/usr/bin/rctl (0755 root) not in the .deb"
need 'has_file "$tmp/deb.list" -rw-r--r-- root/root ./lib/systemd/system/rctl.service' "/lib/systemd/system/rctl.service not in the .deb"
need 'has_file "$tmp/deb.list" drwxr-xr-x root/root ./etc/rctl/' "/etc/rctl/ (0755 root:root) not in the .deb"
need 'has_file "$tmp/deb.list" -rw-r----- root/rctl ./etc/rctl/rctl.env' "/etc/rctl/rctl.env (0640 root:rctl) not in the .deb"
need 'grep -qx " Package: rctl" "$tmp/deb.info"' "Package: rctl"
need 'grep -qx " Architecture: amd64" "$tmp/deb.info"' "Architecture: amd64"
need 'grep -qx " Pre-Depends: passwd" "$tmp/deb.info"' "Pre-Depends: passwd"
need 'dpkg-deb -f "$deb_arm64" Architecture | grep -qx arm64' "arm64 .deb architecture"
deb_version=$(dpkg-deb -f "$deb_amd64" Version)
mkdir "$tmp/control"
dpkg-deb -e "$deb_amd64" "$tmp/control"
need 'grep -qx /etc/rctl/rctl.env "$tmp/control/conffiles"' "/etc/rctl/rctl.env is not a conffile"
for s in preinst postinst prerm postrm; do
	need '[ -x "$tmp/control/$s" ]' "maintainer script $s missing"
done
# No maintainer script starts or restarts a service (comments and messages aside).
starts() {
	grep -vE '^\s*(#|echo )' "$@" |
		grep -E '(systemctl|deb-systemd-invoke|invoke-rc\.d|service)\b' |
		grep -E '\b(start|restart|try-restart|reload-or-restart|try-reload-or-restart|condrestart)\b'
}
need '! starts "$tmp"/control/{preinst,postinst,prerm,postrm}' "a maintainer script starts or restarts the service: $(starts "$tmp"/control/* || true)"
# The unit as packaged has what the release promises.
unit=$(dpkg-deb --fsys-tarfile "$deb_amd64" | tar -xOf - ./lib/systemd/system/rctl.service)
for d in User=rctl Group=rctl EnvironmentFile=/etc/rctl/rctl.env "ExecStart=/usr/bin/rctl serve" \
	'ExecReload=/bin/kill -HUP $MAINPID' KillSignal=SIGTERM Restart=on-failure LimitNOFILE=65536 \
	NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
	ReadWritePaths=/var/lib/rctl CapabilityBoundingSet= "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
	SystemCallFilter=@system-service; do
	need 'grep -qxF "$d" <<<"$unit"' "rctl.service lacks $d"
done
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' <<<"$unit")
need '[ "${stop_timeout:-0}" -ge 30 ]' "TimeoutStopSec must be >= 30 (got '${stop_timeout}')"
env_default=$(dpkg-deb --fsys-tarfile "$deb_amd64" | tar -xOf - ./etc/rctl/rctl.env)
need '! grep -qE "^RCTL_INSECURE" <<<"$env_default"' "the default rctl.env enables --insecure"

# ---------------------------------------------------------------------------
step "rctl-agent .deb contents"
dpkg-deb -c "$deb_agent" >"$tmp/agent.list"
need 'has_file "$tmp/agent.list" -rwxr-xr-x root/root ./usr/bin/rctl-agent' "/usr/bin/rctl-agent not in the agent .deb"
need 'has_file "$tmp/agent.list" -rw-r--r-- root/root ./lib/systemd/system/rctl-agent.service' "rctl-agent.service not in the agent .deb"
need 'has_file "$tmp/agent.list" drwxr-xr-x root/root ./etc/rctl/' "/etc/rctl/ (0755 root:root) not in the agent .deb"
need 'has_file "$tmp/agent.list" -rw-r----- root/rctl-agent ./etc/rctl/agent.env' "/etc/rctl/agent.env (0640 root:rctl-agent) not in the agent .deb"
need 'grep -q " ./usr/lib/rctl-agent/rctl_agent/cli.py$" "$tmp/agent.list"' "agent modules not in /usr/lib/rctl-agent"
need 'grep -q " ./usr/lib/rctl-agent/msgpack/fallback.py$" "$tmp/agent.list"' "msgpack not in /usr/lib/rctl-agent"
need '! grep -qE "\.so$" "$tmp/agent.list"' "the agent .deb (arch all) contains a shared object"
need 'dpkg-deb -f "$deb_agent" Architecture | grep -qx all' "agent .deb architecture is not all"
need 'dpkg-deb -f "$deb_agent" Depends | grep -qF "python3 (>= 3.11)"' "agent .deb does not depend on python3 (>= 3.11)"
mkdir "$tmp/agent-control"
dpkg-deb -e "$deb_agent" "$tmp/agent-control"
need 'grep -qx /etc/rctl/agent.env "$tmp/agent-control/conffiles"' "/etc/rctl/agent.env is not a conffile"
need '! starts "$tmp"/agent-control/{preinst,postinst,prerm,postrm}' "an agent maintainer script starts or restarts the service"
need '[ "$(dpkg-deb -f "$deb_agent" Version)" = "$deb_version" ]' "rctl and rctl-agent package versions differ"

if command -v rpm >/dev/null; then
	step "rpm contents"
	rpm_amd64=$(ls dist/rctl-*.x86_64.rpm)
	rpm_agent=$(ls dist/rctl-agent-*.noarch.rpm)
	need 'rpm -qp --qf "%{NAME} %{ARCH}\n" "$rpm_amd64" 2>/dev/null | grep -qx "rctl x86_64"' "rctl rpm name/arch"
	need 'rpm -qp --qf "%{NAME} %{ARCH}\n" "$rpm_agent" 2>/dev/null | grep -qx "rctl-agent noarch"' "rctl-agent rpm name/arch"
	need 'rpm -qpc "$rpm_amd64" 2>/dev/null | grep -qx /etc/rctl/rctl.env' "/etc/rctl/rctl.env is not %config in the rpm"
	need 'rpm -qp --qf "[%{FILEFLAGS:fflags} %{FILENAMES}\n]" "$rpm_amd64" 2>/dev/null | grep -qx "cn /etc/rctl/rctl.env"' "/etc/rctl/rctl.env is not %config(noreplace)"
	need 'rpm -qpl "$rpm_amd64" 2>/dev/null | grep -qx /usr/lib/systemd/system/rctl.service' "rpm unit path"
	need 'rpm -qpl "$rpm_amd64" 2>/dev/null | grep -qx /usr/bin/rctl' "rpm /usr/bin/rctl"
	rpm -qp --scripts "$rpm_amd64" >"$tmp/rpm.scripts" 2>/dev/null
	need 'grep -q "^preinstall scriptlet" "$tmp/rpm.scripts" && grep -q "^postuninstall scriptlet" "$tmp/rpm.scripts"' "rpm scriptlets missing"
	need '! starts "$tmp/rpm.scripts"' "an rpm scriptlet starts or restarts the service"
else
	skip "rpm contents (no rpm command)"
fi

# ---------------------------------------------------------------------------
step "systemd-analyze"
# verify needs the ExecStart binaries to exist: copies of the units that start
# the built files instead (the installed units are verified again below).
mkdir "$tmp/units"
cp "$bin" "$tmp/units/rctl"
cp packaging/agent/rctl-agent "$tmp/units/rctl-agent"
for u in rctl rctl-agent; do
	sed "s|^ExecStart=/usr/bin/$u\\b|ExecStart=$tmp/units/$u|" "packaging/systemd/$u.service" >"$tmp/units/$u.service"
	need 'grep -q "^ExecStart=$tmp/units/$u" "$tmp/units/$u.service"' "ExecStart=/usr/bin/$u not in $u.service"
	if ! systemd-analyze verify "$tmp/units/$u.service" >"$tmp/verify-$u.log" 2>&1 ||
		grep -q . "$tmp/verify-$u.log"; then
		cat "$tmp/verify-$u.log"
		fail "systemd-analyze verify $u.service"
	fi
	ok
	exposure=$(systemd-analyze security --offline=yes "$root/packaging/systemd/$u.service" 2>/dev/null |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	echo "   $u.service: verify clean; systemd-analyze security exposure ${exposure:-?}"
	need 'awk -v e="${exposure:-10}" "BEGIN {exit !(e < 2.5)}"' "$u.service exposure ${exposure:-?} is not below 2.5"
done

# ---------------------------------------------------------------------------
if ! $is_root; then
	skip "dpkg install/upgrade/purge (needs root)"
elif dpkg -s rctl >/dev/null 2>&1 || dpkg -s rctl-agent >/dev/null 2>&1; then
	skip "dpkg install (an rctl package is already installed on this machine; not touching it)"
else
	step "dpkg install rctl"
	getent passwd rctl >/dev/null || created_users+=(rctl)
	getent passwd rctl-agent >/dev/null || created_users+=(rctl-agent)
	# Shims record every systemctl / deb-systemd-invoke call the scripts make
	# (and deb-systemd-helper's); /run/systemd/system makes the scripts believe
	# systemd runs. Unit state changes (enable, disable, ...) go to the real
	# systemctl, which makes them offline; anything that needs a running
	# systemd (start, stop, daemon-reload, ...) is only recorded.
	mkdir -p "$tmp/shim"
	real_systemctl=$(command -v systemctl)
	cat >"$tmp/shim/systemctl" <<SHIM
#!/bin/sh
echo "systemctl \$*" >>$tmp/calls
for a in "\$@"; do
	case "\$a" in
	enable|disable|reenable|is-enabled|preset|mask|unmask|link) exec $real_systemctl "\$@" ;;
	esac
done
exit 0
SHIM
	printf '#!/bin/sh\necho "deb-systemd-invoke $*" >>%s/calls\nexit 0\n' "$tmp" >"$tmp/shim/deb-systemd-invoke"
	chmod 755 "$tmp/shim/systemctl" "$tmp/shim/deb-systemd-invoke"
	if [ ! -d /run/systemd/system ]; then
		mkdir -p /run/systemd/system
		made_run_systemd=true
	fi
	export PATH="$tmp/shim:$PATH"
	: >"$tmp/calls"
	touch "$tmp/installed-rctl"
	dpkg -i "$deb_amd64" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i $deb_amd64"; }
	ok
	need 'getent passwd rctl >/dev/null && getent group rctl >/dev/null' "no rctl user/group after install"
	need '[ "$(getent passwd rctl | cut -d: -f6,7)" = "/var/lib/rctl:/usr/sbin/nologin" ]' "rctl user home/shell: $(getent passwd rctl)"
	need '[ "$(id -u rctl)" -lt 1000 ]' "rctl is not a system user"
	need '[ "$(stat -c "%a %U %G" /var/lib/rctl)" = "750 rctl rctl" ]' "/var/lib/rctl is $(stat -c "%a %U %G" /var/lib/rctl), want 750 rctl rctl"
	need '[ "$(stat -c "%a %U %G" /etc/rctl/rctl.env)" = "640 root rctl" ]' "/etc/rctl/rctl.env is $(stat -c "%a %U %G" /etc/rctl/rctl.env)"
	need '[ "$(/usr/bin/rctl version)" = "rctl $version" ]' "installed rctl version is '$(/usr/bin/rctl version)', want 'rctl $version'"
	need '[ -L /etc/systemd/system/multi-user.target.wants/rctl.service ]' "rctl.service not enabled for boot"
	need 'grep -q "installed and enabled for boot, not started" "$tmp/dpkg.log"' "postinst does not say the server was not started"
	need '! grep -E "\b(start|restart|try-restart)\b" "$tmp/calls"' "install started the service: $(cat "$tmp/calls")"
	if systemd-analyze verify /lib/systemd/system/rctl.service >"$tmp/verify-installed.log" 2>&1 && ! grep -q . "$tmp/verify-installed.log"; then
		ok
	else
		cat "$tmp/verify-installed.log"
		fail "systemd-analyze verify of the installed rctl.service"
	fi
	# The packaged env file leaves the server unstartable, with a clear
	# message: first the missing TLS files, then (with TLS files) the node id.
	envargs=$(grep -E '^[A-Z_]+=' /etc/rctl/rctl.env | tr '\n' ' ')
	mkdir "$tmp/tls"
	/usr/bin/rctl tls ca create --dir "$tmp/tls" >/dev/null
	/usr/bin/rctl tls cert create --ca-dir "$tmp/tls" --role server --name s1 --host 127.0.0.1 --out "$tmp/tls" >/dev/null
	chown -R rctl "$tmp/tls"
	chmod 755 "$tmp"
	set +e
	msg=$(cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $envargs runuser -u rctl -- /usr/bin/rctl serve 2>&1)
	rc=$?
	msg2=$(cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $envargs RCTL_TLS_CA="$tmp/tls/ca.crt" \
		RCTL_TLS_CERT="$tmp/tls/s1.crt" RCTL_TLS_KEY="$tmp/tls/s1.key" runuser -u rctl -- /usr/bin/rctl serve 2>&1)
	rc2=$?
	set -e
	need '[ $rc = 2 ] && grep -q "/etc/rctl/ca.crt" <<<"$msg"' "default rctl.env: want exit 2 naming /etc/rctl/ca.crt, got $rc: $msg"
	need '[ $rc2 = 2 ] && grep -q "node-id is required" <<<"$msg2"' "rctl.env with TLS files: want exit 2 'node-id is required', got $rc2: $msg2"
	echo "   default rctl.env refuses to start: $msg"
	echo "   ... and with TLS files: $msg2"

	step "dpkg upgrade path (reinstall)"
	echo "RCTL_NODE_ID=edited-by-operator" >>/etc/rctl/rctl.env
	: >"$tmp/calls"
	dpkg -i "$deb_amd64" >"$tmp/dpkg2.log" 2>&1 || { cat "$tmp/dpkg2.log"; fail "dpkg -i (reinstall)"; }
	need '! grep -E "\b(start|restart|try-restart|reload-or-restart|stop)\b" "$tmp/calls"' "the upgrade path touched the service: $(cat "$tmp/calls")"
	need 'grep -q "daemon-reload" "$tmp/calls"' "the upgrade path did not daemon-reload: $(cat "$tmp/calls")"
	need 'grep -qx "RCTL_NODE_ID=edited-by-operator" /etc/rctl/rctl.env' "the upgrade replaced the operator's /etc/rctl/rctl.env"
	need '! grep -q "installed and enabled" "$tmp/dpkg2.log"' "the upgrade path acted as a first install"
	sed -i "/^RCTL_NODE_ID=edited-by-operator$/d" /etc/rctl/rctl.env

	if dpkg --compare-versions "$(dpkg-query -W -f '${Version}' python3 2>/dev/null || echo 0)" ge 3.11; then
		step "dpkg install rctl-agent"
		touch "$tmp/installed-rctl-agent"
		dpkg -i "$deb_agent" >"$tmp/dpkg-agent.log" 2>&1 || { cat "$tmp/dpkg-agent.log"; fail "dpkg -i $deb_agent"; }
		ok
		need 'getent passwd rctl-agent >/dev/null' "no rctl-agent user"
		need '[ "$(stat -c "%a %U %G" /var/lib/rctl-agent)" = "750 rctl-agent rctl-agent" ]' "/var/lib/rctl-agent is $(stat -c "%a %U %G" /var/lib/rctl-agent)"
		need '[ "$(stat -c "%a %U %G" /etc/rctl/agent.env)" = "640 root rctl-agent" ]' "/etc/rctl/agent.env is $(stat -c "%a %U %G" /etc/rctl/agent.env)"
		agent_v=$(runuser -u rctl-agent -- /usr/bin/rctl-agent --version 2>&1)
		need '[ "$agent_v" = "rctl-agent $version" ]' "packaged rctl-agent --version: '$agent_v', want 'rctl-agent $version'"
		need '[ -L /etc/systemd/system/multi-user.target.wants/rctl-agent.service ]' "rctl-agent.service not enabled"
		if systemd-analyze verify /lib/systemd/system/rctl-agent.service >"$tmp/verify-agent.log" 2>&1 && ! grep -q . "$tmp/verify-agent.log"; then
			ok
		else
			cat "$tmp/verify-agent.log"
			fail "systemd-analyze verify of the installed rctl-agent.service"
		fi
		envargs=$(grep -E '^[A-Z_]+=' /etc/rctl/agent.env | tr '\n' ' ')
		set +e
		msg=$(cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin RCTL_AGENT_STATE_DIR=/var/lib/rctl-agent $envargs runuser -u rctl-agent -- /usr/bin/rctl-agent 2>&1)
		rc=$?
		set -e
		need '[ $rc = 2 ] && grep -qi "servers" <<<"$msg"' "default agent.env: want exit 2 about --servers, got $rc: $msg"
		echo "   default agent.env refuses to start: $msg"
		: >"$tmp/calls"
		dpkg -i "$deb_agent" >"$tmp/dpkg-agent2.log" 2>&1 || { cat "$tmp/dpkg-agent2.log"; fail "dpkg -i agent (reinstall)"; }
		need '! grep -E "\b(start|restart|try-restart|stop)\b" "$tmp/calls"' "the agent upgrade path touched the service: $(cat "$tmp/calls")"

		if command -v systemd-nspawn >/dev/null; then
			step "sandbox: both units under systemd (systemd-nspawn)"
			$made_run_systemd && rmdir /run/systemd/system
			if ! packaging/test/sandbox-check.sh >"$tmp/sandbox.log" 2>&1; then
				cat "$tmp/sandbox.log"
				fail "the units do not work under systemd (log above)"
			fi
			$made_run_systemd && mkdir -p /run/systemd/system
			sed 's/^/   /' "$tmp/sandbox.log"
			checks=$((checks + $(grep -c '^ok ' "$tmp/sandbox.log")))
		else
			skip "sandbox under systemd (no systemd-nspawn)"
		fi

		step "dpkg purge rctl-agent"
		dpkg --purge rctl-agent >"$tmp/purge-agent.log" 2>&1 || { cat "$tmp/purge-agent.log"; fail "dpkg --purge rctl-agent"; }
		rm -f "$tmp/installed-rctl-agent"
		for p in /usr/bin/rctl-agent /usr/lib/rctl-agent /etc/rctl/agent.env /var/lib/rctl-agent; do
			need '[ ! -e "$p" ]' "$p left after purging rctl-agent"
		done
	else
		skip "dpkg install rctl-agent (Debian python3 >= 3.11 not installed)"
	fi

	step "dpkg purge rctl"
	: >"$tmp/calls"
	dpkg --purge rctl >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "dpkg --purge rctl"; }
	rm -f "$tmp/installed-rctl"
	need 'grep -q "systemctl --system stop rctl.service" "$tmp/calls"' "removal did not stop the service: $(cat "$tmp/calls")"
	need '! grep -E "\b(start|restart)\b" "$tmp/calls"' "removal started the service"
	for p in /usr/bin/rctl /lib/systemd/system/rctl.service /etc/rctl /var/lib/rctl \
		/etc/systemd/system/multi-user.target.wants/rctl.service; do
		need '[ ! -e "$p" ] && [ ! -L "$p" ]' "$p left after purge"
	done
fi

# ---------------------------------------------------------------------------
step "agent wheel and sdist"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "${whls[0]}" ||
	fail "pip install ${whls[0]}"
ok
agent_v=$("$tmp/venv/bin/rctl-agent" --version)
rctl_v=$("$bin" version)
need '[ "${agent_v#rctl-agent }" = "${rctl_v#rctl }" ]' "rctl-agent --version '$agent_v' != rctl version '$rctl_v'"
need '[ "${agent_v#rctl-agent }" = "$version" ]' "rctl-agent --version '$agent_v', want $version"
# The sdist builds a wheel of the same version (offline: the build tools of .tools/py).
mkdir "$tmp/sdist-wheel"
.tools/py/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$tmp/sdist-wheel" "${sdists[0]}" >/dev/null 2>&1 ||
	fail "the sdist does not build"
need '[ "$(basename "$tmp"/sdist-wheel/*.whl)" = "$(basename "${whls[0]}")" ]' "the sdist builds $(ls "$tmp/sdist-wheel"), want $(basename "${whls[0]}")"

current=""
elapsed=$(($(date +%s) - start))
echo "package-test: ok: $checks checks in ${elapsed}s; version $version; $(basename "$deb_amd64") $(basename "$deb_agent") $(basename "${whls[0]}")${skipped:+; skipped: ${skipped[*]}}"
