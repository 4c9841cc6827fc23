#!/usr/bin/env bash
# make bench-compare BASE=<git rev> [BENCH=<regexp>]: the ./bench/ figures
# of the build at BASE and of the working tree side by side, in one run.
#
#   1. builds BASE into bin/rctl-base (bench/build-base.sh: from `git
#      archive BASE`, the working tree and the index untouched) and the
#      working tree into bin/rctl (make build);
#   2. compiles the working tree's ./bench/ test binary once and runs each
#      benchmark matched by BENCH with -benchtime=1x, first with
#      RCTL_BIN=bin/rctl-base, then with RCTL_BIN=bin/rctl, so that drift of
#      the machine hits both alike (one run is
#      `go test -run='^$' -bench='^BenchmarkX$' -benchtime=1x ./bench/`);
#   3. prints one Markdown table (bench/cmd/benchcompare) with a header:
#      both revisions, date, nproc, load average before and after.
#
# BENCH (default: every benchmark) selects top-level benchmarks as
# `go test -list` does; a part after the first "/" selects sub-benchmarks,
# e.g. BENCH='^BenchmarkTaskAdd$/clients=1$'. Raw outputs are kept in
# bench/out/compare-<base>-<head>/ (base.txt, head.txt, compare.md).
# Environment: GO (go), MAKE (make), BENCH_TIMEOUT (per run, 30m),
# BENCH_COUNT (1: runs of each benchmark per build, alternated base, head,
# base, head, …; the table shows each side's mean and the count, for
# figures whose run-to-run spread is larger than the change sought); the
# benchmarks' own RCTL_BENCH_* settings are passed on.
# Exit status: 0, 1 if a build or a benchmark run failed (the table is
# printed all the same), 2 for a usage error.
set -euo pipefail

usage() {
	cat >&2 <<'EOF'
usage: make bench-compare BASE=<git rev> [BENCH=<regexp>]
       bench/compare.sh <git rev> [<regexp>]
Runs the ./bench/ benchmarks (all, or those matched by BENCH) against the
build of BASE and the working tree's build, interleaved, and prints a table.
  e.g. make bench-compare BASE=HEAD~3 BENCH='^BenchmarkTaskAdd$'
EOF
}

fail_usage() {
	echo "bench-compare: $*" >&2
	usage
	exit 2
}

GO=${GO:-go}
MAKE=${MAKE:-make}
TIMEOUT=${BENCH_TIMEOUT:-30m}
COUNT=${BENCH_COUNT:-1}
base_arg=${1:-${BASE:-}}
bench_re=${2:-${BENCH:-}}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Run as root in a checkout owned by someone else, git refuses the
# repository ("dubious ownership"); this script only reads from it.
git() { command git -c safe.directory="$root" "$@"; }

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || fail_usage "BENCH_COUNT=$COUNT: want a positive number of runs per build"
[ -n "$base_arg" ] || fail_usage "BASE is missing: name the git revision to compare with"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail_usage "$root is not a git checkout"
base_sha=$(git rev-parse --verify --quiet "${base_arg}^{commit}") ||
	fail_usage "BASE=$base_arg is not a revision of this repository (try a commit, tag or HEAD~N)"
base_short=$(git rev-parse --short "$base_sha")
head_short=$(git rev-parse --short HEAD)
# --no-optional-locks: no index refresh while others work in the tree.
if [ -n "$(git --no-optional-locks status --porcelain --untracked-files=no)" ]; then
	head_label="$head_short + working tree"
	dir_head="$head_short-dirty"
else
	head_label=$head_short
	dir_head=$head_short
fi

# Top-level pattern for -list and the sub-benchmark part, if any.
if [ -z "$bench_re" ]; then
	top_re=.
	sub_re=
elif [[ $bench_re == */* ]]; then
	top_re=${bench_re%%/*}
	sub_re=/${bench_re#*/}
else
	top_re=$bench_re
	sub_re=
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rctl-bench-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# The head's benchmark code and table program, compiled once: both builds
# run the very same benchmarks even if bench/ is edited meanwhile.
echo "bench-compare: compiling ./bench/ and bench/cmd/benchcompare"
"$GO" test -c -o "$tmp/bench.test" ./bench/
"$GO" build -o "$tmp/benchcompare" ./bench/cmd/benchcompare
# (RCTL_BIN set: the package's TestMain would build a binary otherwise.)
list_benches() { (cd bench && RCTL_BIN=unused "$tmp/bench.test" -test.list "$1" 2>&1); }
list=$(list_benches "$top_re") || fail_usage "BENCH=$bench_re: $list"
mapfile -t benches < <(grep '^Benchmark' <<<"$list" || true)
[ "${#benches[@]}" -gt 0 ] ||
	fail_usage "BENCH=$bench_re matches no benchmark; there are: $(list_benches . | grep '^Benchmark' | tr '\n' ' ')"

echo "bench-compare: building the working tree into bin/rctl"
"$MAKE" --no-print-directory build GO="$GO"
echo "bench-compare: building $base_short ($base_arg) into bin/rctl-base"
GO="$GO" bash bench/build-base.sh "$base_sha" >/dev/null || exit 1

out_rel=bench/out/compare-$base_short-$dir_head
out=$root/$out_rel
mkdir -p "$out"
: >"$out/base.txt"
: >"$out/head.txt"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
failed=()
i=0
for name in "${benches[@]}"; do
	i=$((i + 1))
	pattern="^${name}\$${sub_re}"
	times=""
	for ((rep = 1; rep <= COUNT; rep++)); do
		for side in base head; do
			if [ "$side" = base ]; then bin=$root/bin/rctl-base; else bin=$root/bin/rctl; fi
			t0=$(date +%s)
			rc=0
			echo "# bench-compare: $name, $side build ($bin), run $rep of $COUNT, $(date '+%H:%M:%S')" >>"$out/$side.txt"
			(cd bench && RCTL_BIN=$bin "$tmp/bench.test" -test.run='^$' -test.bench="$pattern" \
				-test.benchtime=1x -test.timeout="$TIMEOUT") >>"$out/$side.txt" 2>&1 || rc=$?
			times+=" $side $(($(date +%s) - t0)) s"
			if [ "$rc" != 0 ]; then
				times+=" (FAILED, exit $rc)"
				failed+=("$name on $side, run $rep (exit $rc, see $out_rel/$side.txt)")
			fi
		done
	done
	echo "bench-compare: [$i/${#benches[@]}] $name:$times"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(sed -n 's/^cpu: //p' "$out/head.txt" | head -1)
{
	echo "bench-compare: base $base_short ($base_arg) vs head $head_label"
	echo
	echo "- date: $(date '+%Y-%m-%d %H:%M %Z'); nproc $(nproc)${cpu:+, $cpu}; $("$GO" env GOVERSION)"
	echo "- load average (1/5/15 min): at start $load_start; before the runs $load_before; after $load_after"
	echo "- benchmarks: ${bench_re:-all} (${#benches[@]} top-level), -benchtime=1x, $COUNT run(s) per build, each base then head with the head's bench code"
	echo "- raw output: $out_rel/"
	echo
	"$tmp/benchcompare" -base "base $base_short" -head "head $head_label" "$out/base.txt" "$out/head.txt" || true
	if [ "${#failed[@]}" -gt 0 ]; then
		echo
		for f in "${failed[@]}"; do echo "- FAILED: $f"; done
	fi
	echo
	echo "took $(($(date +%s) - start)) s"
} >"$out/compare.md"

# Run as root in a checkout that belongs to someone else: give them the
# files this made.
if [ "$(id -u)" = 0 ]; then
	owner=$(stat -c %u:%g "$root")
	if [ "$owner" != 0:0 ]; then
		chown -R "$owner" bench/out bin/rctl-base
	fi
fi

echo
cat "$out/compare.md"
[ "${#failed[@]}" -eq 0 ] || exit 1
