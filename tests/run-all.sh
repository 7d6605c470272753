#!/usr/bin/env bash
# The whole check: lint, format, types, then every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check monitor tests bench dashboards
python3 -m ruff format --check monitor tests bench dashboards
python3 -m mypy monitor
# "long" tests play whole lab scenarios in wall-clock time (up to 12 minutes each): run them
# with `python3 -m pytest -m long`.
python3 -m pytest -q -p no:cacheprovider -m "not long" "$@"
