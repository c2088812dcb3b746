#!/usr/bin/env bash
# The test command: sets everything up, starts the real local services, runs lint, format check,
# type check and the whole test suite, then stops the services it started.
#   scripts/test.sh [pytest args...]
# Set HIVERL_KEEP_SERVICES=1 to leave the services running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

started_here=0
if ! .venv/bin/hiverl services status >/dev/null 2>&1; then
  started_here=1
fi
stop_services() {
  if [ "$started_here" = 1 ] && [ "${HIVERL_KEEP_SERVICES:-0}" != 1 ]; then
    .venv/bin/hiverl services down || true
  fi
}
trap stop_services EXIT
.venv/bin/hiverl services up

echo "== ruff check"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -n 2 --dist loadgroup -m "not stack" "$@"
# The compose stack on a real Docker engine (tests/stack/) runs alone: it needs both cores. It
# installs and starts the engine and Compose when missing (scripts/stack.sh). Exit code 5 (no
# test selected: arguments that name other tests) is not a failure.
echo "== pytest: the compose stack"
.venv/bin/pytest -n 0 -m stack "$@" || [ "$?" = 5 ]
