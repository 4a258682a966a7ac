"""Shared fixtures for integration tests: real servers on loopback ports.

Servers are session-scoped (one per pytest worker) because starting them costs far more
than the tests that use them; each test gets its own repositories and image names so
tests never see each other's state.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git import GitDaemon
from tests.support.kube import COMPONENT_FILES, ControlPlane
from tests.support.registry import RegistryServer

_REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """An anonymous docker-registry."""
    with RegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[RegistryServer]:
    """A docker-registry behind htpasswd basic auth (user alice)."""
    with RegistryServer(htpasswd=("alice", "reg-s3cret-pw")) as server:
        yield server


@pytest.fixture(scope="session")
def git_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where bare repositories served by the session's git servers live."""
    return tmp_path_factory.mktemp("git-root")


@pytest.fixture(scope="session")
def git_daemon(git_root: Path) -> Iterator[GitDaemon]:
    with GitDaemon(git_root) as daemon:
        yield daemon


def _kube_bin_dir() -> Path:
    """The directory of control-plane binaries: $AUTOMATOR_KUBE_BIN, else the script's answer.

    hack/test.sh runs hack/control-plane.sh once and exports AUTOMATOR_KUBE_BIN, so pytest
    workers do not each call it (a cold build takes ~9 minutes, longer than a test timeout).
    """
    given = os.environ.get("AUTOMATOR_KUBE_BIN")
    if given:
        bin_dir = Path(given)
        missing = [name for name in COMPONENT_FILES if not (bin_dir / name).is_file()]
        if missing:
            pytest.fail(
                f"AUTOMATOR_KUBE_BIN={given} lacks {', '.join(missing)}; point it at the "
                "directory `bash hack/control-plane.sh all` prints, or unset it",
                pytrace=False,
            )
        return bin_dir
    result = subprocess.run(
        ["bash", str(_REPO_ROOT / "hack" / "control-plane.sh"), "all"],
        cwd=_REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 2:
        if os.environ.get("CI"):
            pytest.fail(
                "no Go toolchain and no Kubernetes binaries, and CI is set: cluster tests "
                "must run in CI; install Go >= 1.26 or set KUBEBUILDER_ASSETS",
                pytrace=False,
            )
        pytest.skip(
            "!!! no Go toolchain and no Kubernetes binaries: cluster tests skipped; "
            "install Go or set KUBEBUILDER_ASSETS !!!"
        )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.fail(
            f"hack/control-plane.sh all exited {result.returncode}:\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return Path(lines[-1])


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real Kubernetes control plane (etcd, apiserver, controller-manager, scheduler, kwok).

    One per pytest worker (each on its own free ports, in its own worker's temporary
    directory); tests share it, so each works in its own namespace (``kube_namespace``).
    """
    bin_dir = _kube_bin_dir()
    with ControlPlane(bin_dir, tmp_path_factory.mktemp("control-plane")) as cluster:
        yield cluster


@pytest.fixture
def kube_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists); deleted after."""
    name = f"t-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.wait_for(
        lambda: control_plane.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=60,
        what=f"the default ServiceAccount in namespace {name}",
    )
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
