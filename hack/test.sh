#!/usr/bin/env bash
# The one command that gates a change (and the one CI runs): set-up, format and lint
# (ruff), strict types (mypy), import contracts (import-linter), then every test with
# warnings as errors. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff format" && ruff format --check .
echo "== ruff check" && ruff check .
echo "== mypy --strict" && mypy
echo "== import-linter" && lint-imports
echo "== pytest"
set +e
python -m pytest -W error -n "${PYTEST_WORKERS:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treat as failure, the suite must never be empty" >&2
  exit 1
fi
exit "$rc"
