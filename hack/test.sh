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
# The Kubernetes test control plane's binaries (the cluster tests start them): built once
# (~9 minutes on 2 cores, then cached), looked up here once so pytest workers share the answer.
if [ -z "${AUTOMATOR_KUBE_BIN:-}" ]; then
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  kube_rc=0
  kube_out="$(bash hack/control-plane.sh all)" || kube_rc=$?
  if [ "$kube_rc" -eq 0 ]; then
    AUTOMATOR_KUBE_BIN="$(tail -n1 <<<"$kube_out")"
    export AUTOMATOR_KUBE_BIN
    echo "== control plane: $AUTOMATOR_KUBE_BIN"
  elif [ "$kube_rc" -eq 2 ] && [ -z "${CI:-}" ]; then
    echo "== control plane: !!! WARNING: no Go toolchain and no Kubernetes binaries: the" \
      "cluster tests will be SKIPPED; install Go >= 1.26 (hack/setup.sh says how) or set" \
      "KUBEBUILDER_ASSETS / TEST_ASSET_* (hack/control-plane.sh --help) !!!" >&2
  elif [ "$kube_rc" -eq 2 ]; then
    echo "== control plane: no Go toolchain and no Kubernetes binaries, and CI is set: the" \
      "cluster tests must run in CI; install Go >= 1.26 or set KUBEBUILDER_ASSETS" >&2
    exit 1
  else
    echo "== control plane: hack/control-plane.sh all failed (exit $kube_rc, see above)" >&2
    exit 1
  fi
fi

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
