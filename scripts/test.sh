#!/usr/bin/env bash
# Every check, locally and in CI: lint, then the whole test suite (unit and integration tests
# with the real homeserver, models and shared corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check civicbot tests bench
.venv/bin/python -m pytest -p no:cacheprovider "$@"
