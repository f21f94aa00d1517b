#!/usr/bin/env bash
# The unit tier (tests/unit) on every supported Python, each in a throwaway venv holding only the wheel of this
# checkout (not editable) with its own extras, pytest, and the package's dependencies (pinned to the dev group):
#   3.10 3.11 3.12 3.13  pyenv's newest patch release of each, on this machine;
#   3.14                 Debian forky's python3.14 in the cdk-pip-layer-ci/python:3.14 image (.ci/docker-setup.sh):
#                        neither pyenv (it downloads from python.org) nor uv (from GitHub) can fetch a 3.14 here,
#                        and no registry we reach publishes a CPython build; Debian does.
# Needs scripts/setup.sh --docker to have run. Fails if any Python is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV_VERSIONS=${PYENV_ROOT:-$HOME/.pyenv}/versions
IMAGE_314=cdk-pip-layer-ci/python:3.14
say() { printf "[unit-pythons %3ds] %s\n" "$SECONDS" "$*"; }
die() { printf '[unit-pythons] ERROR: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d /tmp/cdk-pip-layer-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/dist"

say "building the wheel"
.venv/bin/python -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheels=("$work"/dist/*.whl)
[ ${#wheels[@]} = 1 ] || die "expected one wheel, got: ${wheels[*]}"
# The package's own optional extras (uv, the engine's second installer; publish's AWS SDK) and, for pytest and every
# dependency, the version the dev dependency group pins (one source of truth: pyproject.toml).
.venv/bin/python - "$work/dist" <<'EOF'
import sys
import tomllib
from importlib.metadata import metadata, requires
from pathlib import Path

from packaging.requirements import Requirement

out = Path(sys.argv[1])
extras = sorted(set(metadata("cdk-pip-layer").get_all("Provides-Extra") or []))
reqs = [Requirement(r) for r in requires("cdk-pip-layer") or []]
own = {"pytest", "pytest-xdist"} | {r.name for r in reqs if r.marker is None or "extra" not in str(r.marker)}
own |= {r.name for r in reqs if r.marker is not None and any(r.marker.evaluate({"extra": e}) for e in extras)}
group = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["dependency-groups"]["dev"]
dev = [Requirement(line) for line in group if isinstance(line, str)]
(out / "constraints.txt").write_text("".join(f"{r.name}{r.specifier}\n" for r in dev if r.name in own))
(out / "extras.txt").write_text(",".join(extras))
EOF
grep -q '^pytest==' "$work/dist/constraints.txt" || die "no pytest pin in the dev group"
grep -q '^pytest-xdist==' "$work/dist/constraints.txt" || die "no pytest-xdist pin in the dev group"

# Each Python downloads what it needs into one wheelhouse (files already there are not fetched again: aws-cdk-lib
# and its kin are ~85 MB) and installs from it alone, without byte-compiling what the unit tests never import.
# The host's pip configuration (local indexes) is left out: PyPI only, as on a user's machine.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# No dev tools here: the few tests whose reference is one (Poetry's own content hash, the CycloneDX schema
# validator) skip with the reason; everywhere else (.venv) their absence is a failure (tests/dev_tools.py).
export CDK_PIP_LAYER_TESTS_WITHOUT_DEV_TOOLS=1
mkdir "$work/dist/wheelhouse"
# shellcheck disable=SC2016 # $1: the venv's python, $2: the directory holding the wheel, constraints and wheelhouse
unit_run='wheel="$(echo "$2"/*.whl)[$(cat "$2/extras.txt")]" &&
  "$1" -m pip download --quiet -d "$2/wheelhouse" "$wheel" pytest pytest-xdist -c "$2/constraints.txt" &&
  "$1" -m pip install --quiet --no-compile --no-index --find-links "$2/wheelhouse" "$wheel" pytest pytest-xdist \
    -c "$2/constraints.txt" &&
  "$1" -m pytest -p no:cacheprovider -q tests/unit'

failed=()
for minor in 3.10 3.11 3.12 3.13; do
  python=$(find "$PYENV_VERSIONS" -maxdepth 3 -path "*/$minor.*/bin/python$minor" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$python" ] || die "no Python $minor under $PYENV_VERSIONS"
  say "Python $minor ($python)"
  "$python" -m venv "$work/venv-$minor"
  sh -c "$unit_run" sh "$work/venv-$minor/bin/python" "$work/dist" || failed+=("$minor")
done

say "Python 3.14 ($IMAGE_314)"
ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
docker_args=(--rm -v "$PWD:/src:ro" -v "$work/dist:/dist" -w /src -e PIP_CONFIG_FILE=/dev/null
  -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PYTHONDONTWRITEBYTECODE=1 -e CDK_PIP_LAYER_TESTS_WITHOUT_DEV_TOOLS=1)
if [ -f "$ca" ]; then docker_args+=(-v "$ca:/certs/ca.crt:ro" -e PIP_CERT=/certs/ca.crt); fi
docker run "${docker_args[@]}" "$IMAGE_314" sh -c "python3.14 -m venv /tmp/venv && $unit_run" sh /tmp/venv/bin/python /dist ||
  failed+=(3.14)

[ ${#failed[@]} = 0 ] || die "the unit tier failed on Python ${failed[*]}"
say "the unit tier passed on Python 3.10, 3.11, 3.12, 3.13 and 3.14"
