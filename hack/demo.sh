#!/usr/bin/env bash
# Self-contained demo: a throwaway docker-registry and git daemon on loopback, a config
# repo with annotated manifests, and one real update cycle driven by the `automator` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup.sh
exec .venv/bin/python hack/demo.py "$@"
