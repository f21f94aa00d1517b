#!/usr/bin/env bash
# Sets up everything this project needs on a fresh Debian machine, idempotently:
#   - .venv: a Python (>= 3.10) virtual environment with cdk-pip-layer (editable) and the pinned dev tools;
#   - node_modules: the CDK CLI, pinned in package.json (aws-cdk@2);
#   - with --docker: Debian's docker.io, a running dockerd, and stand-in Lambda build images (.ci/docker-setup.sh).
set -euo pipefail
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
cd "$(dirname "$0")/.."

with_docker=0
for arg in "$@"; do
  case "$arg" in
    --docker) with_docker=1 ;;
    *) echo "usage: scripts/setup.sh [--docker]" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*" >&2; }

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "setup: no Python >= 3.10 found (set PYTHON=/path/to/python3)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
say "installing cdk-pip-layer and the dev tools into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=24' 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -c 'import cdk_pip_layer, aws_cdk, pytest' || { echo "setup: the Python install failed" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x node_modules/.bin/cdk ] || ! cmp -s package.json node_modules/.package.json.installed; then
  say "installing the CDK CLI from npm"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
  cp package.json node_modules/.package.json.installed
fi

if [ "$with_docker" = 1 ]; then
  bash .ci/docker-setup.sh
fi
say "ready"
