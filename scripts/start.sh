#!/usr/bin/env bash
# Install everything (first time only) and start civicbot on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/civicbot start "$@"
