#!/usr/bin/env bash
# The whole check: lint, format, types, then every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check monitor tests bench dashboards
python3 -m ruff format --check monitor tests bench dashboards
python3 -m mypy monitor
# The tests run in two parts. Those that create no network namespace run on every core (at
# most four workers: each loads the compiled code and some hold whole captures). Those that
# do (live capture on veth pairs, the lab's wards, the daemon on an interface) run after
# them one at a time, with the machine to themselves: a packet rate or a deadline of theirs
# is then the machine's alone.
# "long" tests play whole lab scenarios in wall-clock time (up to 12 minutes each): run them
# with `python3 -m pytest -m long`.
workers=$(nproc)
((workers > 4)) && workers=4
# pytest's status 5 is "no test selected", as when arguments select tests of one part only
status=0
# (pytest-benchmark, where a machine has it, warns at every worker that xdist disables it:
# no test of ours uses it)
python3 -m pytest -q -p no:cacheprovider -p no:benchmark -m "not long and not netns" \
  --numprocesses "$workers" --dist worksteal "$@" || status=$?
namespaces=0
python3 -m pytest -q -p no:cacheprovider -m "not long and netns" "$@" || namespaces=$?
if ((status == 5)); then
  status=$namespaces
elif ((status == 0 && namespaces != 5)); then
  status=$namespaces
fi
exit "$status"
