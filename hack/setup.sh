#!/usr/bin/env bash
# Install everything the demo and the test suite need on a fresh Debian machine:
# the real servers the integration tests drive (docker-registry, htpasswd, sshd, git),
# dockerd and debootstrap for the container test, a Go toolchain when the Kubernetes test
# control plane still has to be built, then a virtualenv with the package and its dev
# tools. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v gpg >/dev/null 2>&1 || need_apt+=(gnupg)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
# The container test (tests/integration/test_container.py): a private dockerd builds the
# Dockerfile on a Debian base that debootstrap makes (no image can be pulled).
[ -x /usr/sbin/dockerd ] || command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian starts these as services on install; the tests run their own instances.
for svc in docker-registry ssh; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done

# A Go toolchain, for hack/control-plane.sh: it builds the Kubernetes test control plane
# (kube-apiserver, etcd, ...) once into ~/.cache/automator/kube, which takes Go >= 1.26
# (Kubernetes 1.37's go.mod). Only needed while that cache is cold and no binaries are given.
GO_MIN=1.26
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin" # go.dev's tarball lives here, not always on PATH
fi
if ! command -v go >/dev/null 2>&1; then
  # Without Go the script cannot build, so this returns at once: 0 when the binaries are
  # cached or given (KUBEBUILDER_ASSETS, TEST_ASSET_*), 2 when Go is what is missing.
  kube_rc=0
  bash hack/control-plane.sh all >/dev/null 2>&1 || kube_rc=$?
  if [ "$kube_rc" -eq 2 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    go_candidate() { apt-cache policy golang-go 2>/dev/null | sed -n 's/^ *Candidate: //p'; }
    candidate="$(go_candidate)"
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      $SUDO apt-get update -qq
      candidate="$(go_candidate)"
    fi
    go_version="${candidate#*:}"     # 2:1.19~1 -> 1.19~1
    go_version="${go_version%%[~+-]*}" # 1.19~1 -> 1.19
    if [ -n "$go_version" ] && [ "$candidate" != "(none)" ] && version_ge "$go_version" "$GO_MIN"; then
      echo "setup: installing golang-go $go_version (builds the test control plane)" >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null
    else
      cat >&2 <<EOF
setup: !!! WARNING: no Go toolchain, and apt's golang-go is ${go_version:-not available} (Go >= $GO_MIN is needed).
setup: !!! The Kubernetes test control plane cannot be built: cluster tests will be SKIPPED
setup: !!! (and FAIL when CI is set). Fix: install Go >= $GO_MIN from https://go.dev/dl/ into
setup: !!! /usr/local/go, or set KUBEBUILDER_ASSETS / TEST_ASSET_* to ready binaries
setup: !!! (see hack/control-plane.sh --help).
EOF
    fi
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
