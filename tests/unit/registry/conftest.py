"""Fixtures for the registry client's unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from automator.config import Settings
from automator.registry import RegistryClient
from tests.unit.registry._fakes import FakeClock, Handler, Recorder, make_settings


@pytest.fixture(autouse=True)
def _no_home_docker_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point DOCKER_CONFIG at an empty directory so the host's credentials never leak in."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("empty-docker-config")))


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

    def build(
        handler: Handler, settings: Settings | None = None, *, retries: int = 3
    ) -> tuple[RegistryClient, Recorder]:
        recorder = Recorder(handler)
        client = RegistryClient(
            settings or make_settings(),
            transport=httpx.MockTransport(recorder),
            retries=retries,
            sleep=sleeps.append,
            clock=clock,
        )
        made.append(client)
        return client, recorder

    yield build
    for client in made:
        client.close()


ClientFor = Callable[..., tuple[RegistryClient, Recorder]]
