# rctl — build, test and benchmark entry points.
#   make test    the whole suite (what CI runs): Go vet/format/race tests,
#                end-to-end process tests, the Python agent's lint/type/tests,
#                a client written from docs/rpc.md alone (e2e/docclient),
#                ansible-lint, promtool on the shipped alert rules, terraform
#                fmt/tflint, the package checks and (root) the Ansible rollout.
#                Installs what it needs itself (Go modules, agent virtualenv).
#   make dev     a local cluster: 5 servers and 3 Python agents (rctl dev).
#   make bench   benchmarks that print figures (bench/RESULTS.md, bench/RESULTS-peer.md);
#                make bench-quick (< 5 min), make chaos SEED=… DURATION=….
#   make bench-compare BASE=<git rev> [BENCH=<regexp>]   ./bench/ figures of
#                BASE's build and the working tree's side by side (one table).

GO      ?= go
PYTHON  ?= python3
VENV    := agent/.venv
BIN     := bin/rctl

# Debian packages the tests use: tmux (rctl top in a real terminal). The
# fault harness needs only ip(8) and /dev/net/tun. Installed when
# running as root (as CI does); without them those tests skip.
DEB_PKGS := tmux iproute2

.PHONY: deps all build test test-rollout lint-monitoring lint-terraform test-go lint lint-go agent-venv test-agent lint-agent dev bench bench-quick bench-compare bench-compare-peer bench-tls chaos fuzz clean

all: build

build:
	$(GO) build -o $(BIN) .

# make test also runs the release and rollout checks: the packages
# (package-test: goreleaser snapshot, contents, systemd-analyze verify,
# install/upgrade/purge) and, as root, the Ansible rollout on eight
# namespace hosts (rollout-test; skipped with a message when not root).
#
# The phases run one after another, each timed ("make test: <phase> took N
# s", and the total at the end); README states what the whole takes on a
# 2-core machine. Running the static checks (ansible-lint, promtool,
# terraform/tflint) beside the rollout was tried: the rollout slowed by as
# much as they took (CI run on 23eb465), so they run in turn.
TEST_PHASES := deps lint test-go test-agent test-docclient lint-ansible lint-monitoring lint-terraform package-test test-rollout

test:
	@t0=$$(date +%s); \
	for p in $(TEST_PHASES); do \
	  s=$$(date +%s); $(MAKE) --no-print-directory $$p || { echo "make test: $$p FAILED after $$(( $$(date +%s) - s )) s"; exit 1; }; \
	  echo "make test: $$p took $$(( $$(date +%s) - s )) s"; \
	done; \
	echo "make test: all passed in $$(( $$(date +%s) - t0 )) s"

# terraform/: terraform fmt, tflint (bundled ruleset) and the inventory
# converter's ruff/mypy; Terraform 1.5.7 and tflint are built into
# bin/tools on first use. The HCL tests run in test-go.
lint-terraform:
	GO=$(GO) bash terraform/check.sh

# The shipped Prometheus rules: promtool check/test rules (promtool is built
# into bin/tools on first use). The dashboard's Go test runs in test-go.
lint-monitoring:
	RCTL_CHECK_GO_TEST=0 GO=$(GO) bash docs/monitoring/check.sh

test-rollout:
	@if [ "$$(id -u)" != 0 ]; then echo "rollout-test: skipped: it needs root (network namespaces, sshd); CI runs it as root"; else $(MAKE) rollout-test; fi

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

lint: lint-go lint-agent

lint-go:
	$(GO) mod download
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './agent/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# bench/peer is a module of its own (etcd's dependencies): vet and
	@# unit-test it too, or a change to package fault breaks it unseen.
	cd bench/peer && $(GO) vet ./... && $(GO) test -count=1 ./...

# The fault scenarios (timing-sensitive, namespaces as root) run after the
# rest, by themselves, so the other packages' load does not skew their
# figures.
test-go: build agent-venv
	RCTL_BIN=$(abspath $(BIN)) RCTL_AGENT_BIN=$(abspath $(VENV))/bin/rctl-agent $(GO) test -race -count=1 -timeout 30m \
	  $$($(GO) list ./... | grep -v '/e2e/fault$$')
	@# e2e and the fault suite run the plain binary built above (issue 15:
	@# one binary). The servers' code runs under the race detector in the
	@# cluster and rpc package tests (in-process servers); e2e's own -race
	@# build of rctl (its default without RCTL_BIN) doubled its time, 240 s
	@# against 114 s, and made it the longest package of this phase.
	@# The fault suite runs without -race: the harness's user-space switch
	@# forwards every frame, and under the detector it costs CPU the timed
	@# servers need (package fault's own tests run under -race above).
	@# Its scenarios run three at a time (each on a network of its own):
	@# one at a time they kept 18 % of the two cores busy and took 334 s,
	@# three at a time 36 % and 155 s, every scenario within its bounds.
	RCTL_BIN=$(abspath $(BIN)) RCTL_AGENT_BIN=$(abspath $(VENV))/bin/rctl-agent $(GO) test -count=1 -parallel 3 -timeout 30m ./e2e/fault/

# The agent's virtualenv is created on first use and reused afterwards.
$(VENV)/.installed: agent/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e 'agent[dev]'
	touch $@

agent-venv: $(VENV)/.installed

lint-agent: agent-venv
	$(VENV)/bin/ruff check agent
	$(VENV)/bin/ruff format --check agent
	$(VENV)/bin/mypy --config-file agent/pyproject.toml agent/src

test-agent: agent-venv build
	RCTL_BIN=$(abspath $(BIN)) $(VENV)/bin/pytest -q agent/tests

dev: build agent-venv
	$(BIN) dev --servers 5 --agents 3

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeEntry -fuzztime=60s ./fsm/
	$(GO) test -run='^$$' -fuzz=FuzzApply -fuzztime=60s ./fsm/
	$(GO) test -run='^$$' -fuzz=FuzzReadFrame -fuzztime=60s ./rpc/

# rctl vs etcd side by side (bench/peer, its own Go module): loopback, plus
# the emulated two-cloud network when run as root. bench appends to
# bench/RESULTS-peer.md (charts in bench/); bench-quick (< 5 min) prints the
# tables, charts in bench/peer/out/.
PEERBENCH = cd bench/peer && $(GO) run ./cmd/peerbench --rctl-bin $(abspath $(BIN))

bench: build
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./bench/
	$(PEERBENCH) --mode full --out ../RESULTS-peer.md
	$(PEERBENCH) --mode full --scenarios latency,throughput --security plain,tls --out ../RESULTS-peer.md

# TLS's cost alone: commit latency and throughput, plaintext and mutual TLS,
# rctl and etcd side by side (part of make bench).
bench-tls: build
	$(PEERBENCH) --mode full --scenarios latency,throughput --security plain,tls

bench-quick: build
	$(PEERBENCH) --mode quick

# ./bench/ (the Go benchmarks) run against BASE's build (bin/rctl-base, built
# from git archive: the working tree is not touched) and this tree's
# (bin/rctl), base then head per benchmark; prints one Markdown table and
# keeps the raw outputs in bench/out/compare-<base>-<head>/ (bench/compare.sh).
# BENCH_COUNT=N alternates base and head N times and shows the means.
# e.g. make bench-compare BASE=HEAD~3 BENCH='^BenchmarkTaskAdd$'
bench-compare:
	@GO='$(GO)' MAKE='$(MAKE)' bash bench/compare.sh "$$BASE" "$$BENCH"

# The failover scenarios (kill -9, SIGSTOP, host cut off) on the emulated
# two-cloud network (needs root) with BASE's build as rctl-base beside this
# tree's rctl (bench/peer). bin/rctl-base is built by bench/build-base.sh
# (git archive BASE, the working tree untouched), with BASE's commit
# stamped in as its version for the report's header; the report goes to
# bench/out/peer-compare-<base>.md, e.g. make bench-compare-peer BASE=HEAD~3
bench-compare-peer: build
	@test -n "$$BASE" || { echo "bench-compare-peer: BASE=<git rev> is missing" >&2; exit 2; }
	set -e; base=$$(GO='$(GO)' bash bench/build-base.sh "$$BASE"); \
	mkdir -p bench/out; rc=0; \
	($(PEERBENCH) --rctl-base-bin '$(abspath bin/rctl-base)' --systems rctl,rctl-base --net wan \
		--scenarios failover,freeze,silent --out ../out/peer-compare-$$base.md) || rc=$$?; \
	[ "$$(id -u)" != 0 ] || chown -R "$$(stat -c %u:%g .)" bench/out bin/rctl-base; exit $$rc

# Randomized nemesis session on the emulated two-cloud network (needs root);
# prints the path of its Markdown report, e.g. make chaos SEED=7 DURATION=10m
SEED     ?= 1
DURATION ?= 5m
chaos: build agent-venv
	RCTL_CHAOS_SEED=$(SEED) RCTL_CHAOS_DURATION=$(DURATION) RCTL_BIN=$(abspath $(BIN)) \
	  RCTL_AGENT_BIN=$(abspath $(VENV))/bin/rctl-agent \
	  $(GO) test -count=1 -timeout 0 -run '^TestChaos$$' -v ./e2e/fault/

clean:
	rm -rf bin $(VENV)

# Release packages (goreleaser.yaml; packaging/). goreleaser v2 is installed
# from the Go module proxy into .tools/bin on first use (~3-8 min).
#   make package       snapshot release into dist/ (offline): tar.gz archives,
#                      .deb/.rpm of rctl (amd64, arm64) and rctl-agent (all),
#                      the agent's wheel and sdist, checksums.txt
#   make package-test  builds them and checks them; as root it also installs
#                      and purges the .debs here and runs both units under
#                      systemd in a container (packaging/test/package-test.sh).
#                      Not part of make test: ~10 min in a fresh clone (goreleaser
#                      install, cold cross builds), ~2 min after that.
#   make agent-dist VERSION=1.2.3   only the agent's wheel/sdist (.build/agent/dist)
GORELEASER_VERSION := v2.15.1
GORELEASER         := .tools/bin/goreleaser

.PHONY: goreleaser package package-test agent-dist

goreleaser:
	@if ! $(GORELEASER) --version 2>/dev/null | grep -q 'GitVersion: *$(GORELEASER_VERSION)$$'; then \
	  echo "installing goreleaser $(GORELEASER_VERSION) into .tools/bin"; \
	  GOBIN=$(abspath .tools/bin) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION); \
	fi

package: goreleaser
	$(GORELEASER) check
	$(GORELEASER) release --snapshot --clean
	cp .build/agent/dist/* dist/

package-test: goreleaser
	GORELEASER=$(abspath $(GORELEASER)) packaging/test/package-test.sh

agent-dist:
	packaging/agent/build.sh $(or $(VERSION),0.0.0+dev)

# A client written from docs/rpc.md alone (e2e/docclient): checks every
# documented method, field, error and limit against a real 3-server cluster
# (plus a one-server mutual-TLS cluster); documented gaps and suspected
# server defects (since fixed) are in e2e/docclient/FINDINGS.md.
.PHONY: test-docclient
test-docclient: agent-venv build
	@$(VENV)/bin/python -c 'import msgpack' 2>/dev/null || $(VENV)/bin/pip install --quiet msgpack
	$(VENV)/bin/ruff check e2e/docclient
	$(VENV)/bin/ruff format --check e2e/docclient
	$(VENV)/bin/mypy --strict e2e/docclient
	RCTL_BIN=$(abspath $(BIN)) $(VENV)/bin/pytest -q e2e/docclient

# Ansible (ansible/): roles rctl_server, rctl_agent (and rctl_common),
# playbooks site.yml and upgrade.yml. ansible-core and ansible-lint live in a
# virtualenv made on first use (.tools/ansible-venv; Python >= 3.11, ~1 min).
#   make lint-ansible   ansible-lint (production profile, --strict) on ansible/
#   make rollout-test   (root) eight test hosts from Terraform's 3+3 example
#                       (5 voters, the non-voter gcp-3, 2 agent workers), each
#                       a network namespace with its own sshd and its own
#                       /etc/rctl, /var/lib/rctl, /opt/rctl: site.yml for
#                       version 0.9.0 with TLS and ACLs, again with a
#                       changed server setting (only rctl.env and a rolling
#                       restart may change), then upgrade.yml to this build
#                       while a client writes; prints one line lost_writes=…
#                       failed_writes=… max_write_gap_ms=… leader_changes=…
#                       unexpected_changes_on_second_run=… nonvoter_ok=…,
#                       then the seconds per phase
#                       (ansible/test/rollout-test.sh). make test runs it as
#                       root (test-rollout).
ANSIBLE_VENV         := .tools/ansible-venv
ANSIBLE_CORE_VERSION := 2.19.14
ANSIBLE_LINT_VERSION := 26.10.1

.PHONY: ansible-venv lint-ansible rollout-test

$(ANSIBLE_VENV)/.installed-$(ANSIBLE_CORE_VERSION)-$(ANSIBLE_LINT_VERSION):
	rm -rf $(ANSIBLE_VENV)
	$(PYTHON) -m venv $(ANSIBLE_VENV)
	$(ANSIBLE_VENV)/bin/pip install --quiet --upgrade pip
	$(ANSIBLE_VENV)/bin/pip install --quiet 'ansible-core==$(ANSIBLE_CORE_VERSION)' 'ansible-lint==$(ANSIBLE_LINT_VERSION)'
	touch $@

ansible-venv: $(ANSIBLE_VENV)/.installed-$(ANSIBLE_CORE_VERSION)-$(ANSIBLE_LINT_VERSION)

lint-ansible: ansible-venv
	cd ansible && PATH=$(abspath $(ANSIBLE_VENV))/bin:$$PATH ansible-lint --offline --strict

rollout-test: build ansible-venv
	ANSIBLE_VENV=$(abspath $(ANSIBLE_VENV)) RCTL_BIN=$(abspath $(BIN)) ansible/test/rollout-test.sh
