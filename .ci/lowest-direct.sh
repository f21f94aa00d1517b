#!/usr/bin/env bash
# Declared = needed: the wheel of this checkout on the oldest supported Python (3.10) with every direct dependency
# at the floor pyproject.toml declares (uv's --resolution lowest-direct), then the pure tiers and a synth of the
# example app with it. A floor too low for what the code uses fails here, not on a user's machine.
# Needs scripts/setup.sh to have run (the CDK CLI, Node.js and uv in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV_VERSIONS=${PYENV_ROOT:-$HOME/.pyenv}/versions
say() { printf "[lowest-direct %3ds] %s\n" "$SECONDS" "$*"; }
die() { printf '[lowest-direct] ERROR: %s\n' "$*" >&2; exit 1; }

python=$(find "$PYENV_VERSIONS" -maxdepth 3 -path "*/3.10.*/bin/python3.10" 2>/dev/null | sort -V | tail -n 1)
[ -n "$python" ] || die "no Python 3.10 under $PYENV_VERSIONS"
work=$(mktemp -d /tmp/cdk-pip-layer-lowest.XXXXXX)
trap 'rm -rf "$work"' EXIT

# PyPI only, as on a user's machine (the host's pip configuration adds local indexes); pytest as the dev group pins
# it (its own floor is not ours to test).
export PIP_CONFIG_FILE=/dev/null UV_NO_CONFIG=1 PYTHONDONTWRITEBYTECODE=1 CDK_PIP_LAYER_TESTS_WITHOUT_DEV_TOOLS=1
pins=$(.venv/bin/python -c 'import tomllib; from packaging.requirements import Requirement
group = tomllib.load(open("pyproject.toml", "rb"))["dependency-groups"]["dev"]
print(" ".join(str(r) for r in map(Requirement, group) if r.name in ("pytest", "pytest-xdist")))')
say "Python 3.10 ($python), every direct dependency at its floor"
# With pip (the engine runs it), and only pip: --seed would add wheel, whose newer packaging would hide the floor of ours.
.venv/bin/uv venv --quiet --python "$python" "$work/venv"
.venv/bin/uv pip install --quiet --python "$work/venv/bin/python" pip
# shellcheck disable=SC2086 # the pins are words
.venv/bin/uv pip install --quiet --python "$work/venv/bin/python" --resolution lowest-direct ".[publish]" $pins
.venv/bin/uv pip freeze --python "$work/venv/bin/python" | grep -iE '^(aws-cdk-lib|constructs|docker|packaging|tomli|pyelftools|cyclonedx-python-lib|uv|boto3)==' |
  tr '\n' ' ' | sed 's/^/[lowest-direct] installed: /; s/$/\n/'

# jsii runs the first `node` on PATH: setup's Node.js (24), alone, not .venv's Python and tools.
mkdir "$work/node-bin"
ln -s "$PWD/.venv/bin/node" "$work/node-bin/node"
export PATH="$work/node-bin:$PATH"

say "the pure tiers"
# From a copy of the checkout without src/: the installed package is the one tested.
git ls-files -z | grep -zv '^src/' | xargs -0 cp --parents -t "$work"
(cd "$work" && venv/bin/python -m pytest -p no:cacheprovider -q -n 2 tests/unit tests/construct)

say "a synth of the example app"
(
  cd "$work"
  "$OLDPWD/node_modules/.bin/cdk" synth -q --app "venv/bin/python example_app/app.py" -o cdk.out >/dev/null
  ls cdk.out/*.template.json >/dev/null
)
say "passed"
