#!/usr/bin/env bash
# terraform/check.sh: the offline checks of terraform/ (make lint-terraform).
#
#   1. terraform fmt -check -recursive (Terraform 1.5.7, the last MPL
#      release, built with `go install` from the Go module proxy);
#   2. tflint with its bundled terraform ruleset, every rule (preset "all",
#      terraform/.tflint.hcl), on every module and example; local module
#      calls are followed, nothing needs `terraform init` or a plugin
#      registry;
#   3. ruff check, ruff format --check and mypy --strict on
#      terraform/tf-inventory.py (the agent's virtualenv has both).
#
# The Go tests over the HCL and the converter (go test ./terraform/) run
# with the rest of the Go tests. `terraform validate` needs the providers,
# whose registry is unreachable here: docs/deploy.md says how to run it.
#
# Tools go into bin/tools (installed once, again only when the pinned
# version changes; the first Terraform build takes ~15 min, tflint ~7).
# Environment: GO (default go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tf=$root/terraform
tools=$root/bin/tools
GO=${GO:-go}
TERRAFORM_VERSION=1.5.7
TFLINT_VERSION=0.64.0

say() { echo "check.sh: $*" >&2; }

# has NAME VERSION: bin/tools/NAME --version reports VERSION on its first line.
has() {
	local first
	first=$("$tools/$1" --version 2>/dev/null | sed -n 1p) || return 1
	[[ "$first" =~ (^|[[:space:]]v?)"$2"$ ]]
}

# install NAME MODULE VERSION: go install MODULE@vVERSION into bin/tools
# unless it is there already.
install() {
	local name=$1 module=$2 version=$3
	has "$name" "$version" && return
	say "installing $name $version into bin/tools (go install from the module proxy; takes minutes the first time)"
	mkdir -p "$tools"
	GOBIN=$tools "$GO" install "$module@v$version"
	has "$name" "$version" || { say "$name $version did not install"; exit 1; }
}

install terraform github.com/hashicorp/terraform "$TERRAFORM_VERSION"
install tflint github.com/terraform-linters/tflint "$TFLINT_VERSION"
venv=$root/agent/.venv
if [ ! -x "$venv/bin/ruff" ] || [ ! -x "$venv/bin/mypy" ]; then
	say "creating the agent's virtualenv (ruff, mypy): make agent-venv"
	make -C "$root" --no-print-directory agent-venv >&2
fi

# Terraform without a CLI configuration file (no warning, no plugin cache).
empty_rc=$(mktemp)
trap 'rm -f "$empty_rc"' EXIT
export TF_CLI_CONFIG_FILE=$empty_rc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

failed=0
step() { # NAME CMD...: run one check, remember a failure, go on
	local name=$1
	shift
	if "$@"; then
		say "ok: $name"
	else
		say "FAILED: $name"
		failed=1
	fi
}

step "terraform fmt" "$tools/terraform" fmt -check -recursive -diff "$tf"
for dir in "$tf"/modules/* "$tf"/examples/*; do
	[ -d "$dir" ] || continue
	step "tflint ${dir#"$root"/}" "$tools/tflint" --chdir="$dir" --config="$tf/.tflint.hcl" --format=compact
done
step "ruff check tf-inventory.py" "$venv/bin/ruff" check --config "$tf/ruff.toml" "$tf/tf-inventory.py"
step "ruff format tf-inventory.py" "$venv/bin/ruff" format --check --config "$tf/ruff.toml" "$tf/tf-inventory.py"
step "mypy --strict tf-inventory.py" "$venv/bin/mypy" --strict --warn-unreachable --python-version 3.11 \
	--cache-dir "$root/.build/mypy-terraform" "$tf/tf-inventory.py"

if [ "$failed" != 0 ]; then
	say "some checks failed (above)"
	exit 1
fi
say "all checks passed"
