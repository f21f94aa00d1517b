#!/usr/bin/env bash
# Remake the lock fixtures with the tools themselves (needs the network to PyPI and the dev group's uv and Poetry):
#   bash tests/data/locks/relock.sh
# Each project pins the same small set: a native wheel (orjson), a dependency with marker-dependent dependencies
# (anyio: exceptiongroup and typing-extensions below Python 3.11) and a marker on a requirement (tomli). The
# requirements.txt beside each lock is that tool's own export of the same lock, the reference the tests compare with.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$here/../../.." && pwd)/.venv/bin"
# The tools see PyPI alone, not this machine's pip or uv configuration.
export UV_NO_CONFIG=1 PIP_CONFIG_FILE=/dev/null REQUESTS_CA_BUNDLE="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}"
unset PIP_FIND_LINKS PIP_CONSTRAINT

# uv-spellings: requirements spelt otherwise than uv records them (markers, extras, names), for the comparison
# without uv.
for project in uv uv-workspace uv-sdist uv-forked uv-spellings; do
    (cd "$here/$project" && "$bin/uv" lock --quiet)
done
# uv-py313 needs Python 3.13 to lock (uv's own rule): give uv one (pyenv's, or one uv finds).
(cd "$here/uv-py313" && "$bin/uv" lock --quiet --python "${PYTHON313:-3.13}")
(cd "$here/uv" && "$bin/uv" export --quiet --frozen --no-dev --no-emit-project --output-file requirements.txt \
    && "$bin/uv" export --quiet --frozen --no-dev --no-emit-project --format pylock.toml --output-file pylock.toml)
# PEP 751 without indexes, as uv pip compile (and PDM) write it: every file by its URL, with its hashes.
(cd "$here/uv-pip-compile" \
    && "$bin/uv" pip compile --quiet --universal --python-version 3.10 --format pylock.toml --output-file pylock.toml \
        requirements.in \
    && "$bin/uv" pip compile --quiet --universal --python-version 3.10 --generate-hashes --output-file requirements.txt \
        requirements.in)
(cd "$here/poetry" && "$bin/poetry" lock --quiet && "$bin/poetry" export --quiet --output requirements.txt)
# Poetry 1.x (lock-version 2.0, still common), run by uv as a tool; its export of the main group and of one group.
poetry1=("$bin/uv" tool run --python 3.11 --from "poetry==1.8.5" poetry)
(cd "$here/poetry1" && "${poetry1[@]}" lock --no-interaction --quiet \
    && "${poetry1[@]}" export --output requirements.txt && "${poetry1[@]}" export --only jobs --output requirements-jobs.txt)
# Pipfile.lock: written from uv.lock's hashes in pipenv's layout (pipenv is not among the dev tools).
"$bin/python" "$here/pipfile_lock.py" "$here/uv/uv.lock" "$here/pipenv/Pipfile.lock"
# Poetry's content hash of other pyproject shapes, which the unit tests compare with without Poetry.
"$bin/python" "$here/poetry_content_hashes.py" "$here/poetry/content-hashes.json"
