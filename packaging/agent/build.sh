#!/usr/bin/env bash
# packaging/agent/build.sh VERSION
# Builds the node agent for a release, stamped with VERSION (the rctl
# release's version, so `rctl-agent --version` and `rctl version` agree):
#   .build/agent/dist/   rctl_agent-*.whl and rctl_agent-*.tar.gz (pip installable)
#   .build/agent/lib/    the agent plus msgpack (pure Python) for the rctl-agent
#                        deb/rpm (/usr/lib/rctl-agent)
# The version is written into a copy of agent/ (its __init__.__version__, which
# pyproject.toml reads); the source tree is not touched. Build tools live in
# .tools/py, msgpack's sdist in .tools/pypi: PyPI is needed only the first time.
# goreleaser runs this as a before hook; `make agent-dist VERSION=…` too.
set -euo pipefail
version=${1:?usage: packaging/agent/build.sh VERSION}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/.build/agent
tools=$root/.tools/py
cache=$root/.tools/pypi
python=${PYTHON:-python3}
msgpack_version=1.2.4 # the agent needs msgpack>=1.0.5; this is the one tests run with

if ! "$tools/bin/python" -c 'import build, setuptools, wheel' 2>/dev/null; then
	echo "agent/build.sh: creating build tools in $tools"
	"$python" -m venv "$tools"
	"$tools/bin/python" -m pip install --quiet --upgrade pip
	"$tools/bin/python" -m pip install --quiet build 'setuptools>=68' wheel
fi
"$tools/bin/python" - "$version" <<'PY'
import sys
from packaging.version import InvalidVersion, Version
try:
    Version(sys.argv[1])
except InvalidVersion:
    sys.exit(f"agent/build.sh: version {sys.argv[1]!r} is not a valid Python package version "
             "(PEP 440); tag releases vX.Y.Z or vX.Y.Z-rc.N")
PY

rm -rf "$out"
mkdir -p "$out/src" "$out/dist" "$out/lib"
tar -C "$root/agent" --exclude=./.venv --exclude=__pycache__ --exclude=.mypy_cache \
	--exclude=.ruff_cache --exclude=.pytest_cache --exclude='*.egg-info' \
	--exclude=./build --exclude=./dist -cf - . | tar -C "$out/src" -xf -
"$tools/bin/python" - "$out/src/src/rctl_agent/__init__.py" "$version" <<'PY'
import pathlib, re, sys
p = pathlib.Path(sys.argv[1])
text, n = re.subn(r'^__version__ = "[^"]*"$', f'__version__ = "{sys.argv[2]}"', p.read_text(), flags=re.M)
if n != 1:
    sys.exit(f"agent/build.sh: no single __version__ = \"...\" line in {p}")
p.write_text(text)
PY
if ! (cd "$out/src" && "$tools/bin/python" -m build --no-isolation --sdist --wheel --outdir "$out/dist") >"$out/build.log" 2>&1; then
	cat "$out/build.log" >&2
	exit 1
fi

# The package tree: the wheel's contents, and msgpack's pure-Python modules
# (its fallback implementation, used when the C extension is absent), so the
# package is architecture-independent and needs nothing from PyPI.
"$tools/bin/python" -m pip install --quiet --no-compile --no-deps --no-index --target "$out/lib" "$out/dist"/*.whl
rm -rf "$out/lib/bin" "$out"/lib/rctl_agent-*.dist-info/direct_url.json
sdist=$cache/msgpack-$msgpack_version.tar.gz
if [ ! -f "$sdist" ]; then
	mkdir -p "$cache"
	"$tools/bin/python" -m pip download --quiet --no-deps --no-binary :all: --dest "$cache" "msgpack==$msgpack_version"
fi
mkdir -p "$out/msgpack"
tar -C "$out/msgpack" -xzf "$sdist"
mkdir -p "$out/lib/msgpack"
cp "$out/msgpack/msgpack-$msgpack_version"/msgpack/*.py "$out/lib/msgpack/"
cp "$out/msgpack/msgpack-$msgpack_version/COPYING" "$out/msgpack-COPYING"
rm -rf "$out/msgpack"
# The tree must import with only the standard library besides it.
"$python" -I -B - "$out/lib" "$version" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import msgpack
import rctl_agent.cli
assert msgpack.Packer.__module__ == "msgpack.fallback", msgpack.Packer.__module__
assert msgpack.unpackb(msgpack.packb({"a": [1, b"x"]})) == {"a": [1, b"x"]}
assert rctl_agent.__version__ == sys.argv[2], rctl_agent.__version__
PY
echo "agent/build.sh: rctl-agent $version: $(cd "$out/dist" && echo *)"
