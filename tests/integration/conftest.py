"""Shared fixtures for integration tests: real servers on loopback ports.

Servers are session-scoped (one per pytest worker) because starting them costs far more
than the tests that use them; each test gets its own repositories and image names so
tests never see each other's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git import GitDaemon
from tests.support.registry import RegistryServer


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
