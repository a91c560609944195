#!/usr/bin/env bash
# Every check, locally and in CI: lint, types, then the whole test suite (unit and integration
# tests with the real homeserver, models and shared corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check civicbot tests bench
.venv/bin/mypy  # over civicbot/, settings in pyproject.toml
# pytest's exit status is passed on: 1 when a test failed or any test was skipped (see
# tests/conftest.py: a skip is a promise nobody checked), 5 when no test was collected.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
