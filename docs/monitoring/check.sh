#!/usr/bin/env bash
# Checks the shipped monitoring files in docs/monitoring/:
#   1. promtool check rules alerts.yml     (syntax, PromQL, templates)
#   2. promtool test rules alerts_test.yml (each alert fires and stays quiet
#                                           where it should)
#   3. go test ./docs/monitoring/          (the Grafana dashboard's fields, and
#                                           every metric name in the dashboard
#                                           and the rules is one a running rctl
#                                           server exports: it starts three)
# promtool is installed on first use into bin/tools/ from the Go module proxy
# (a few minutes); later runs reuse it. Set PROMTOOL_VERSION to change the
# version (a github.com/prometheus/prometheus module version: v0.316.0 is
# Prometheus 3.16.0), GO to use another go binary.
# Run it from anywhere: docs/monitoring/check.sh (RCTL_CHECK_GO_TEST=0 skips
# step 3, which make test runs with the other Go tests).
set -euo pipefail

PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
GO="${GO:-go}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tools="$root/bin/tools"
promtool="$tools/promtool"
# go install builds without a version stamp, so a marker file records which
# version bin/tools/promtool is.
stamp="$tools/.promtool-$PROMTOOL_VERSION"

if [[ ! -x "$promtool" || ! -e "$stamp" ]]; then
  echo "check.sh: installing promtool $PROMTOOL_VERSION into bin/tools (first run: a few minutes)"
  mkdir -p "$tools"
  GOBIN="$tools" "$GO" install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  rm -f "$tools"/.promtool-*
  touch "$stamp"
fi

cd "$here"
echo "check.sh: promtool $PROMTOOL_VERSION check rules"
"$promtool" check rules alerts.yml
echo "check.sh: promtool $PROMTOOL_VERSION test rules"
"$promtool" test rules alerts_test.yml
if [[ "${RCTL_CHECK_GO_TEST:-1}" == 1 ]]; then # make test runs it in test-go
  echo "check.sh: dashboard and metric names (go test ./docs/monitoring/)"
  cd "$root"
  "$GO" test -count=1 ./docs/monitoring/
fi
echo "check.sh: ok"
