"""Fixtures for the registry client's unit tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from automator.config import Settings
from automator.registry import RegistryClient, RegistryMetrics
from tests.unit.registry._fakes import FakeClock, Handler, Recorder, make_settings


@pytest.fixture(autouse=True)
def _no_home_docker_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point DOCKER_CONFIG at an empty directory so the host's credentials never leak in."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("empty-docker-config")))


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token realms are resolved (to refuse metadata addresses); unit tests never ask DNS:
    IP literals resolve to themselves, every name to a documentation address."""
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *_: Any, **kwargs: Any) -> Any:
        try:
            return real(host, port, type=kwargs.get("type", 0), flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client_for(sleeps: list[float], clock: FakeClock) -> Iterator[ClientFor]:
    """Build a client over a scripted handler; closed at teardown."""
    made: list[RegistryClient] = []

    def sleep(seconds: float) -> None:
        """Sleeping moves the fake clock, as it would move a real one."""
        sleeps.append(seconds)
        clock.now += seconds

    def build(
        handler: Handler,
        settings: Settings | None = None,
        *,
        retries: int = 3,
        metrics: RegistryMetrics | None = None,
    ) -> tuple[RegistryClient, Recorder]:
        recorder = Recorder(handler)
        client = RegistryClient(
            settings or make_settings(),
            transport=httpx.MockTransport(recorder),
            retries=retries,
            sleep=sleep,
            clock=clock,
            metrics=metrics,
        )
        made.append(client)
        return client, recorder

    yield build
    for client in made:
        client.close()


ClientFor = Callable[..., tuple[RegistryClient, Recorder]]
