#!/usr/bin/env bash
# bench/build-base.sh <git rev>: builds that revision of rctl into
# bin/rctl-base, from `git archive` in a temporary directory (the working
# tree and the index are not touched), with the revision's short commit
# stamped in as its version (-X cli.Version, as goreleaser stamps a
# release), and prints that short commit. Used by make bench-compare
# (bench/compare.sh) and make bench-compare-peer.
# Environment: GO (go). Exit status: 0, 1 if the build failed, 2 if the
# revision is unknown.
set -euo pipefail
GO=${GO:-go}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Run as root in a checkout owned by someone else, git refuses the
# repository ("dubious ownership"); this script only reads from it.
git() { command git -c safe.directory="$root" -C "$root" "$@"; }
rev=${1:?usage: bench/build-base.sh <git rev>}
sha=$(git rev-parse --verify --quiet "${rev}^{commit}") || {
	echo "build-base: $rev is not a revision of this repository (try a commit, tag or HEAD~N)" >&2
	exit 2
}
short=$(git rev-parse --short "$sha")
src=$(mktemp -d "${TMPDIR:-/tmp}/rctl-base.XXXXXX")
trap 'rm -rf "$src"' EXIT
mkdir -p "$root/bin"
git archive --format=tar "$sha" | tar -x --no-same-owner -C "$src"
(cd "$src" && "$GO" build -ldflags "-X github.com/rctl-dev/rctl/cli.Version=$short" -o "$root/bin/rctl-base" .) || {
	echo "build-base: building $short failed" >&2
	exit 1
}
echo "$short"
